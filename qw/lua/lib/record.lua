-- Shared by every script that changes a job's state (included where a
-- script says "-- #include record"). A job's state lives in its hash,
-- qw:state, and changes in the same script that moves its id; a job that
-- keeps a record (qw:history exists) also gets the event in its history.
-- See docs/records.md for the fields and the states.

-- Redis's clock, in seconds: "due" and every recorded time come from it,
-- so hosts with skewed clocks agree.
local function qw_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The first 50 events of a record are kept; later ones are only counted
-- (qw:events), so a job that retries forever cannot grow without bound.
local QW_HISTORY_CAP = 50

-- Append one event (a Lua table; its "at" is set here) to the history of
-- job hash `key`, if it keeps one. `history` is its qw:history when the
-- caller has read it already (false: not read yet).
local function qw_note(key, event, now, history)
  if history == nil or history == false then
    history = redis.call('HGET', key, 'qw:history')
  end
  if not history then
    return
  end
  if redis.call('HINCRBY', key, 'qw:events', 1) > QW_HISTORY_CAP then
    return
  end
  event.at = now or qw_now()
  local entry = cjson.encode(event)
  if #history > 2 and string.sub(history, -1) == ']' then
    history = string.sub(history, 1, -2) .. ',' .. entry .. ']'
  else
    history = '[' .. entry .. ']'
  end
  redis.call('HSET', key, 'qw:history', history)
end

-- The namespace of every key, from the job hash prefix "<namespace>job:".
local function qw_namespace(job_prefix)
  return string.sub(job_prefix, 1, #job_prefix - 4)
end

-- The job settled (done, failed or cancelled): wake each waiter. A waiter
-- counted itself in qw:waiters and blocks on all:settled:<id>; one token
-- per waiter, and the list expires soon after. `waiters` is qw:waiters
-- when already read (false: read it here).
local QW_SETTLED_TTL = 60
local function qw_wake_waiters(key, namespace, id, waiters)
  if waiters == false then
    waiters = redis.call('HGET', key, 'qw:waiters')
  end
  local n = tonumber(waiters) or 0
  if n < 1 then
    return
  end
  local settled = namespace .. 'all:settled:' .. id
  for _ = 1, math.min(n, 1000) do
    redis.call('RPUSH', settled, '1')
  end
  redis.call('EXPIRE', settled, QW_SETTLED_TTL)
  redis.call('HDEL', key, 'qw:waiters')
end
