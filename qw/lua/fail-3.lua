-- Move a job from a worker's in-progress list to the failed list, keeping its
-- hash with the reason, as one atomic step.
-- KEYS[1] <worker>:jobs
-- KEYS[2] all:failed
-- KEYS[3] job:<id>
-- ARGV[1] job id
-- ARGV[2..] field, value, ... to record (qw:error, qw:traceback, qw:failed_at, ...)
-- Returns 1 when failed, 0 when the id was no longer in the worker's list.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
if #ARGV > 1 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 2))
end
return 1
