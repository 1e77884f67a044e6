-- Put the jobs of a worker that died or left back at the head of the queues
-- they came from, as one atomic step. If it died (ARGV[3] says why), the
-- job it was running used an attempt (past its attempts it goes to the
-- failed list); so does every job it had claimed (qw:running set: with a
-- prefetch, those it held) when nobody knows which one ran (ARGV[8]).
-- After a stop they all get the attempt back.
-- KEYS[1] <worker>:jobs
-- KEYS[2] <manager>:jobs   its manager's queue
-- KEYS[3] all:jobs
-- KEYS[4] all:failed
-- KEYS[5] <manager>:heartbeat
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] "1": jobs queued to this very worker stay in its list, for the
--         replacement of the same name; "0": they go to KEYS[2]
-- ARGV[3] why the running job was interrupted (recorded as its error, and
--         the attempt counts), or "" (a stop: the attempt is given back)
-- ARGV[4] attempts allowed when the job does not say (qw:max_attempts)
-- ARGV[5] now (unix seconds)
-- ARGV[6] "1": do nothing if KEYS[5] exists (reaping a manager whose lease
--         ran out, which must not touch a manager that came back)
-- ARGV[7] worker name
-- ARGV[8] "1": the ids from ARGV[9] on are the jobs the worker had started
--         (its manager knows them from shared memory): only those are
--         charged the cause; the others it held (claimed by a prefetch, not
--         started) get their attempt back, as on a stop. Absent or "": every
--         claimed job is charged (a dead manager's workers: nobody knows).
-- Returns the number of ids moved out of KEYS[1] (failed ones included), or
-- -1 when ARGV[6] found the manager alive.
-- Retry after a lost reply: safe, idempotent: the lost call emptied the
-- worker's list but for jobs queued to that very worker, which it finds
-- unclaimed (no qw:running) and keeps again; no attempt changes twice.
-- #include record
-- #include priority
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then
  return -1
end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
-- A job taken from a named queue goes back there: all:queue:<name> under
-- our namespace (the hash prefix less its "job:").
local namespace = qw_namespace(ARGV[1])
local named = namespace .. 'all:queue:'
local function is_named(origin)
  return origin and string.sub(origin, 1, #named) == named and not string.find(origin, ':', #named + 1, true)
end
local started = nil
if ARGV[8] == '1' then
  started = {}
  for i = 9, #ARGV do
    started[ARGV[i]] = true
  end
end
local kept = {}
local moved = 0
-- Left to right, each pushed on the head (right end): the id at the right end,
-- the one that was running (without a prefetch), ends up first in line again.
local function requeue_one(id)
  local key = ARGV[1] .. id
  local origin = redis.call('HGET', key, 'qw:origin')
  local attempts = tonumber(redis.call('HGET', key, 'qw:attempts') or '0') or 0
  local failed = false
  -- The run is taken back: from now on its worker's acknowledgement is stale.
  local claimed = redis.call('HDEL', key, 'qw:running') == 1
  redis.call('HDEL', key, 'qw:cancel')
  if claimed and attempts > 0 then
    if ARGV[3] == '' or (started and not started[id]) then
      redis.call('HINCRBY', key, 'qw:attempts', -1)
    else
      local record = cjson.encode({attempt = attempts, error = ARGV[3], at = tonumber(ARGV[5]), worker = ARGV[7]})
      local errors = redis.call('HGET', key, 'qw:errors')
      if errors and string.sub(errors, -1) == ']' and #errors > 2 then
        errors = string.sub(errors, 1, -2) .. ',' .. record .. ']'
      else
        errors = '[' .. record .. ']'
      end
      redis.call('HSET', key, 'qw:errors', errors, 'qw:error', ARGV[3], 'qw:worker', ARGV[7])
      local allowed = tonumber(redis.call('HGET', key, 'qw:max_attempts') or ARGV[4]) or 1
      if attempts >= allowed then
        redis.call('HSET', key, 'qw:failed_at', ARGV[5])
        redis.call('LPUSH', KEYS[4], id)
        qw_failed(key, namespace, id, ARGV[3])
        failed = true
        moved = moved + 1
      end
    end
    if not failed then
      redis.call('HSET', key, 'qw:state', 'queued')
      local charged = ARGV[3] ~= '' and not (started and not started[id])
      qw_note(key, {event = 'requeued', cause = charged and ARGV[3] or 'stopped', worker = ARGV[7]},
        nil, nil, true)
    end
  end
  if failed then
    -- done with it
  elseif origin == KEYS[2] or origin == KEYS[3] or is_named(origin) then
    redis.call('RPUSH', origin, id)
    moved = moved + 1
  elseif ARGV[2] == '1' then
    kept[#kept + 1] = id
  else
    redis.call('RPUSH', KEYS[2], id)
    moved = moved + 1
  end
end

for i = 1, #ids do
  if qw_is_mark(ids[i]) then
    -- A priority marker a BLMOVE brought, before the claim that follows it.
    redis.call('RPUSH', qw_mark_list(ids[i]), ids[i])
  else
    requeue_one(ids[i])
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept do
  redis.call('RPUSH', KEYS[1], kept[i])
end
return moved
