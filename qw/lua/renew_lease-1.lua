-- Renew a manager's lease if this process still holds it.
-- KEYS[1] <manager>:heartbeat
-- ARGV[1] holder token
-- ARGV[2] lease in milliseconds
-- Returns 1 renewed, 2 retaken after it expired (Redis was out of reach for
-- longer than the lease), 0 held by another process.
-- Retry after a lost reply: safe, idempotent (a retake retried reads as
-- renewed: the caller's run id check catches a new server).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
