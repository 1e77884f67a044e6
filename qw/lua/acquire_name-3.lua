-- Take a manager name: its lease and its registration, as one atomic step.
-- KEYS[1] <manager>:heartbeat   the lease
-- KEYS[2] all:managers
-- KEYS[3] all:orphaned          managers whose queue waits without them
-- ARGV[1] manager name
-- ARGV[2] holder token ("pid N on HOST (random)"), unique to this manager process
-- ARGV[3] lease in milliseconds
-- ARGV[4] a holder known to be dead, whose lease is taken over if it still
--         holds it, or ""
-- Returns "" when taken, else the token of the live holder.
-- Retry after a lost reply: safe. The name is held under our token: the
-- retry returns that token, which the caller takes as "held by us".
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3])
    or (ARGV[4] ~= '' and redis.call('GET', KEYS[1]) == ARGV[4]
        and redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])) then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  return ''
end
return redis.call('GET', KEYS[1])
