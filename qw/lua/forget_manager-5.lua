-- Deregister a manager whose lease ran out, once its workers' jobs have been
-- requeued; remember its queue if jobs still wait there (they are orphaned
-- until a manager of that name starts again).
-- KEYS[1] <manager>:heartbeat
-- KEYS[2] all:managers
-- KEYS[3] <manager>:workers
-- KEYS[4] <manager>:jobs
-- KEYS[5] all:orphaned
-- ARGV[1] manager name
-- Returns 1 when forgotten, 0 when the manager is alive again.
-- Retry after a lost reply: safe, idempotent (SREM, DEL and SADD again).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('LLEN', KEYS[4]) > 0 then
  redis.call('SADD', KEYS[5], ARGV[1])
end
return 1
