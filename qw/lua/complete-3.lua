-- Finish this step of a running job and queue the same job, with its data
-- updated, on the next queue, as one atomic step (a pipeline: a job that
-- moves from queue to queue). Its attempts start afresh for the next step.
-- KEYS[1] <worker>:jobs
-- KEYS[2] job:<id>
-- KEYS[3] the next queue: all:queue:<name>, or all:jobs
-- ARGV[1] job id
-- ARGV[2] claim token, as the claim returned it; must equal qw:running
-- ARGV[3] "1": replace the job's data with the fields below; "0": keep it
-- ARGV[4..] field, value, ... of the new data (as the client encodes it)
-- Returns 1, or -1 refused (stale token, or the id left this worker's list).
-- Retry after a lost reply: safe, refused (-1): the lost call took the id
-- out of the worker's list and cleared qw:running, so the job moves once.
-- qw does not retry it; the running job sees the error.
-- #include record
if redis.call('HGET', KEYS[2], 'qw:running') ~= ARGV[2] then
  return -1
end
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return -1
end
if ARGV[3] == '1' then
  local old = {}
  for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
    if string.sub(name, 1, 3) ~= 'qw:' then
      old[#old + 1] = name
    end
  end
  for first = 1, #old, 1000 do
    redis.call('HDEL', KEYS[2], unpack(old, first, math.min(first + 999, #old)))
  end
  for first = 4, #ARGV, 1000 do
    redis.call('HSET', KEYS[2], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  end
end
qw_note(KEYS[2], {event = 'completed', next = KEYS[3]}, nil, nil, true)
redis.call('HDEL', KEYS[2], 'qw:running', 'qw:cancel')
redis.call('HSET', KEYS[2], 'qw:state', 'queued', 'qw:origin', KEYS[3], 'qw:attempts', 0)
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
