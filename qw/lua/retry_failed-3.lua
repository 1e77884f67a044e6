-- Queue a failed job again, with its attempts reset, as one atomic step.
-- KEYS[1] all:failed
-- KEYS[2] job:<id>
-- KEYS[3] all:jobs (or the job's named queue, all:queue:<name>, from qw:origin)
-- ARGV[1] job id
-- ARGV[2] namespace prefix of every key
-- Returns 1 when queued again, 0 when the id is not in the failed list, -1
-- when it has no data to run (a dangling id: it stays failed).
-- #include record
if redis.call('LPOS', KEYS[1], ARGV[1]) == false then
  return 0
end
if redis.call('HEXISTS', KEYS[2], 'qw:dangling') == 1 then
  return -1
end
redis.call('LREM', KEYS[1], 0, ARGV[1])
local queue = KEYS[3]
local origin = redis.call('HGET', KEYS[2], 'qw:origin')
if origin and string.sub(origin, 1, #ARGV[2]) == ARGV[2] then
  local rest = string.sub(origin, #ARGV[2] + 1)
  local manager = string.match(rest, '^([^:]+):')
  if string.match(rest, '^all:queue:[^:]+$') then
    queue = origin  -- a named queue, under our namespace
  elseif manager and manager ~= 'all' then
    queue = ARGV[2] .. manager .. ':jobs'
  end
end
redis.call('HDEL', KEYS[2], 'qw:error', 'qw:traceback', 'qw:failed_at', 'qw:worker', 'qw:finished_at')
redis.call('HSET', KEYS[2], 'qw:attempts', 0, 'qw:state', 'queued')
qw_note(KEYS[2], {event = 'queued', cause = 'retry of the failed job'})
redis.call('LPUSH', queue, ARGV[1])
return 1
