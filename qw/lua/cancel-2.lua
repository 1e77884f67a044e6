-- Cancel one job, as one atomic step: a queued, scheduled or retrying job
-- is taken out of where it waits and becomes "cancelled"; a running one is
-- marked (qw:cancel) and its manager is asked, through its control list, to
-- stop that one run; a settled one is left alone.
-- KEYS[1] job:<id>
-- KEYS[2] all:scheduled
-- ARGV[1] job id
-- ARGV[2] namespace prefix of every key
-- ARGV[3] seconds to keep the cancelled record when the job does not say
--         (qw:result_ttl)
-- ARGV[4] the command id of the request to the manager (a running job)
-- Returns {outcome, detail}: "cancelled"; "running" and the manager asked;
-- "done", "failed" or "cancelled" already (detail "settled"); "missing"
-- (no record); "lost" when the id is nowhere it could be taken from.
-- The lists it takes an id from are named by the job's qw:origin, under
-- ARGV[2]: the queue it was put on, or its manager's queue after a requeue.
-- Retry after a lost reply: safe. A job cancelled by the lost call is
-- settled ("cancelled", "settled"); for a running job the retry sends the
-- manager a second cancel command for the same run, which finds it stopped
-- or stops it once.
-- #include record
-- #include priority
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing', ''}
end
local f = redis.call('HMGET', KEYS[1], 'qw:state', 'qw:running', 'qw:origin', 'qw:worker',
  'qw:waiters', 'qw:tracked', 'qw:result_ttl', 'qw:failed_at', 'qw:prio_member')
local state = (f[2] and 'running') or f[1] or (f[8] and 'failed') or 'queued'
local ns = ARGV[2]
if state == 'done' or state == 'failed' or state == 'cancelled' then
  return {state, 'settled'}
end
if f[2] then
  -- The worker whose list holds it: a claim writes qw:worker only for a job
  -- that keeps a record (the hot path writes nothing more), and an earlier
  -- run's may be left, so the registered workers are looked through.
  local worker = f[4]
  if not (worker and redis.call('LPOS', ns .. worker .. ':jobs', ARGV[1])) then
    worker = nil
    for _, m in ipairs(redis.call('SMEMBERS', ns .. 'all:managers')) do
      for _, w in ipairs(redis.call('SMEMBERS', ns .. m .. ':workers')) do
        if not worker and redis.call('LPOS', ns .. w .. ':jobs', ARGV[1]) then
          worker = w
        end
      end
    end
  end
  local manager = worker and string.match(worker, '^(.+):[^:]+$')
  if not manager then
    return {'lost', ''}
  end
  redis.call('HSET', KEYS[1], 'qw:cancel', '1')
  local command = cjson.encode({id = ARGV[4], op = 'cancel', args = {job = ARGV[1], worker = worker},
    from = 'qw cancel'})
  redis.call('RPUSH', ns .. manager .. ':control', command)
  return {'running', manager}
end
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 0 and state == 'waiting' then
  removed = redis.call('ZREM', ns .. 'all:waiting', ARGV[1])
end
local origin = f[3]
if removed == 0 and origin and f[9] and string.sub(origin, 1, #ns) == ns then
  removed = qw_prio_remove(origin, f[9])  -- in its queue's priority set
end
if removed == 0 and origin and string.sub(origin, 1, #ns) == ns then
  removed = redis.call('LREM', origin, 0, ARGV[1])
  if removed == 0 then
    -- A job queued to a worker that died went to its manager's queue.
    local manager = string.match(string.sub(origin, #ns + 1), '^([^:]+):[^:]+:jobs$')
    if manager then
      removed = redis.call('LREM', ns .. manager .. ':jobs', 0, ARGV[1])
    end
  end
end
if removed == 0 then
  return {'lost', ''}
end
qw_cancelled(KEYS[1], ns, ARGV[1], tonumber(ARGV[3]) or 600, f[5], f[6], f[7])
return {'cancelled', ''}
