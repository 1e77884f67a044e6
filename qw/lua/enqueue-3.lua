-- Queue one job: write its hash and push its id, as one atomic step.
-- KEYS[1] job:<id>            the job's hash
-- KEYS[2] the list to push on  all:jobs, <manager>:jobs or <worker>:jobs
-- KEYS[3] <manager>:workers    checked when queuing to one worker
-- ARGV[1] job id
-- ARGV[2] worker name that must be a member of KEYS[3], or "" for no check
-- ARGV[3..] field, value, field, value, ...
-- Returns 1 when queued, 0 when job:<id> already exists (nothing is changed).
if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  return redis.error_reply('QW_UNKNOWN_WORKER ' .. ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- HSET in slices: unpack() of a very wide job would overflow Lua's C stack.
for first = 3, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
