-- Give a manager name up: deregister it and drop its lease, if still held.
-- KEYS[1] <manager>:heartbeat
-- KEYS[2] all:managers
-- KEYS[3] <manager>:workers
-- ARGV[1] manager name
-- ARGV[2] holder token
-- Returns 1 when released, 0 when another process holds the name now.
-- Retry after a lost reply: safe, idempotent.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
