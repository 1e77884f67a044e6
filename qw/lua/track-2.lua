-- Track a job (its record stays until untracked) or untrack it.
-- KEYS[1] job:<id>
-- KEYS[2] all:tracked
-- ARGV[1] job id
-- ARGV[2] "1" track, "0" untrack
-- ARGV[3] untracking a settled record: seconds it then stays when it does
--         not say (qw:result_ttl)
-- Returns 1, or 0 when the job has no record.
-- Retry after a lost reply: safe, idempotent.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'qw:tracked', '1', 'qw:keep', '1')
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('PERSIST', KEYS[1])
  return 1
end
redis.call('HDEL', KEYS[1], 'qw:tracked')
redis.call('SREM', KEYS[2], ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'qw:state', 'qw:result_ttl')
if f[1] == 'done' or f[1] == 'cancelled' then
  local ttl = tonumber(f[2]) or tonumber(ARGV[3]) or 600
  if ttl < 1 then
    ttl = 1
  end
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
