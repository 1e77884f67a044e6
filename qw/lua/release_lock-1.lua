-- Release a lock if this process still holds it.
-- KEYS[1] the lock
-- ARGV[1] the holder's token
-- Returns 1 when released, 0 when it had expired or another process holds it.
-- Retry after a lost reply: safe, idempotent: the lock is ours no more.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
