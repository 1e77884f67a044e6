-- Shared by every script that changes a job's state (included where a
-- script says "-- #include record"). A job's state lives in its hash,
-- qw:state, and changes in the same script that moves its id; a job that
-- keeps a record (qw:history exists) also gets the event in its history.
-- See docs/records.md for the fields and the states.
-- #include priority

-- Redis's clock, in seconds: "due" and every recorded time come from it,
-- so hosts with skewed clocks agree. Read once per script call: a script
-- runs atomically, so one instant serves every step it takes.
local QW_CLOCK = nil
local function qw_now()
  if not QW_CLOCK then
    local t = redis.call('TIME')
    QW_CLOCK = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return QW_CLOCK
end

-- The same clock as text, "<seconds>.<6 digits>", made from TIME's own
-- strings: writing a number to Redis formats it (%.17g) and reading one
-- parses it, a few thousand instructions each, which a settling step that
-- only stores the time need not pay.
local function qw_now_text()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2]
end

-- The first 50 events of a record are kept, later ones dropped, so a job
-- that retries forever cannot grow without bound.
local QW_HISTORY_CAP = 50
local QW_SHORTEST_EVENT = 38  -- {"event":"done","at":1796194464.6050}: fewer bytes mean fewer events

-- `history` (a JSON array) with `event` (a Lua table; its "at" is set here)
-- appended; false when the cap is reached.
local function qw_history_with(history, event, now)
  if #history >= QW_HISTORY_CAP * QW_SHORTEST_EVENT then
    local _, count = string.gsub(history, '"event":', '')
    if count >= QW_HISTORY_CAP then
      return false
    end
  end
  -- Times to the microsecond: cjson writes 14 significant digits, a
  -- hundredth of a second for a unix time, too coarse to order events.
  local stamps = {string.format('"at":%.6f', now or qw_now())}
  for _, name in ipairs({'claimed', 'for'}) do
    if type(event[name]) == 'number' then
      stamps[#stamps + 1] = string.format('"%s":%.6f', name, event[name])
      event[name] = nil
    end
  end
  local body = cjson.encode(event)
  local entry = '{' .. table.concat(stamps, ',') .. (body == '{}' and '}' or (',' .. string.sub(body, 2)))
  if #history > 2 and string.sub(history, -1) == ']' then
    return string.sub(history, 1, -2) .. ',' .. entry .. ']'
  end
  return '[' .. entry .. ']'
end

-- Append one event to the history of job hash `key`, if it keeps one.
-- `history` is its qw:history when the caller has read it already (false
-- or nil: not read yet). The claim and the done step write no event: the
-- record's qw:started_at, qw:worker and qw:finished_at say them, and a
-- reader puts them in their place (qw/records.py). So an event that ends a
-- run without settling the job (retry, requeued, completed: the next claim
-- overwrites those fields) carries its claim: `ends_run`.
local function qw_note(key, event, now, history, ends_run)
  local claim = nil
  if ends_run then
    claim = redis.call('HMGET', key, 'qw:history', 'qw:started_at', 'qw:worker')
    history = claim[1]
  elseif history == nil or history == false then
    history = redis.call('HGET', key, 'qw:history')
  end
  if not history then
    return
  end
  if claim and claim[2] then
    event.claimed = tonumber(claim[2])
    event.worker = event.worker or claim[3]
  end
  local longer = qw_history_with(history, event, now)
  if longer then
    redis.call('HSET', key, 'qw:history', longer)
  end
end

-- The namespace of every key, from the job hash prefix "<namespace>job:".
local function qw_namespace(job_prefix)
  return string.sub(job_prefix, 1, #job_prefix - 4)
end

-- The job settled (done, failed or cancelled): wake each waiter. A waiter
-- counted itself in qw:waiters and blocks on all:settled:<id>; one token
-- per waiter, and the list expires soon after. `waiters` is qw:waiters as
-- the caller read it (false: none).
-- A token says how the job settled, "<state>\n", and for a done job with a
-- result of at most QW_TOKEN_RESULT bytes the result too, so that the
-- waiter needs no read after it wakes.
local QW_SETTLED_TTL = 60
local QW_TOKEN_RESULT = 65536
local function qw_wake_waiters(key, namespace, id, waiters, state, result)
  local n = tonumber(waiters) or 0
  if n < 1 then
    return
  end
  local settled = namespace .. 'all:settled:' .. id
  local token = (state or 'settled') .. '\n'
  if state == 'done' and result and #result <= QW_TOKEN_RESULT then
    token = token .. result
  end
  for _ = 1, math.min(n, 1000) do
    redis.call('RPUSH', settled, token)
  end
  redis.call('EXPIRE', settled, QW_SETTLED_TTL)
  redis.call('HDEL', key, 'qw:waiters')
end

-- How long a settled record stays: `ttl` seconds; a record that would not
-- be kept (ttl 0) but has waiters stays long enough for them to read it; a
-- tracked one stays until untracked.
local function qw_expire(key, ttl, waiters, tracked)
  if tracked then
    redis.call('PERSIST', key)
    return
  end
  if ttl <= 0 then
    ttl = QW_SETTLED_TTL
  end
  redis.call('EXPIRE', key, math.ceil(ttl))
end

-- Note a settled record in all:finished (the index of done and cancelled
-- records, for searches). The index outlives its newest record by a little
-- at most, so once every record has expired it goes too, with no manager
-- needed; the managers drop expired ids from it meanwhile.
local function qw_index_finished(namespace, id, now, ttl, tracked)
  local finished = namespace .. 'all:finished'
  redis.call('ZADD', finished, now, id)
  if tracked then
    redis.call('PERSIST', finished)
    return
  end
  ttl = math.ceil(ttl > 0 and ttl or QW_SETTLED_TTL)
  local left = redis.call('TTL', finished)
  if left >= 0 and left + 5 < ttl then
    redis.call('EXPIRE', finished, ttl)
  elseif left == -1 and redis.call('ZCARD', finished) == 1 then
    redis.call('EXPIRE', finished, ttl)  -- a new index; one holding a tracked record stays
  end
end

-- A job failed for good (it is in all:failed now): its state, time and
-- event, and its waiters woken (its dependents: see qw_failed).
local function qw_failed_state(key, namespace, id, error, now)
  redis.call('HSET', key, 'qw:state', 'failed', 'qw:finished_at', now)
  qw_note(key, {event = 'failed', error = error}, now, nil, true)  -- a retry by hand may claim it again
  qw_wake_waiters(key, namespace, id, redis.call('HGET', key, 'qw:waiters'), 'failed')
end

-- #include flow

-- A run returned: delete the hash (a job that keeps nothing), or keep it as
-- the record of a done job, its result with it, in this same step.
-- `waiters`, `tracked` and `dependents` are qw:waiters, qw:tracked and
-- qw:dependents as read (or false). Its "done" event is qw:finished_at.
local function qw_done(key, namespace, id, ttl, result, waiters, tracked, dependents)
  if dependents then
    qw_release(namespace, id, 'done', '', result)
  end
  if ttl <= 0 and not waiters and not tracked then
    redis.call('DEL', key)
    return
  end
  local now = qw_now_text()
  redis.call('HDEL', key, 'qw:running', 'qw:cancel')
  if result ~= '' then
    redis.call('HSET', key, 'qw:state', 'done', 'qw:finished_at', now, 'qw:result', result)
  else
    redis.call('HSET', key, 'qw:state', 'done', 'qw:finished_at', now)
  end
  qw_index_finished(namespace, id, now, ttl, tracked)
  qw_wake_waiters(key, namespace, id, waiters, 'done', result)
  qw_expire(key, ttl, waiters, tracked)
end

-- A job failed for good (it is in all:failed now): its state, time, event,
-- waiters and dependents. Failed records stay, as the failed list does.
local function qw_failed(key, namespace, id, error)
  qw_failed_state(key, namespace, id, error, qw_now())
  if redis.call('HEXISTS', key, 'qw:dependents') == 1 then
    qw_release(namespace, id, 'failed', error, '')
  end
end

-- The job will not run (again): its state, time, event and waiters, and the
-- record kept `ttl` seconds (its own qw:result_ttl first).
local function qw_cancelled(key, namespace, id, ttl, waiters, tracked, own_ttl)
  if redis.call('HEXISTS', key, 'qw:dependents') == 1 then
    qw_release(namespace, id, 'cancelled', '', '')
  end
  local now = qw_now()
  redis.call('HDEL', key, 'qw:running', 'qw:cancel')
  redis.call('HSET', key, 'qw:state', 'cancelled', 'qw:finished_at', now)
  qw_note(key, {event = 'cancelled'}, now)
  qw_index_finished(namespace, id, now, tonumber(own_ttl) or ttl, tracked)
  qw_wake_waiters(key, namespace, id, waiters, 'cancelled')
  qw_expire(key, tonumber(own_ttl) or ttl, waiters, tracked)
end

-- A job queued with a record puts qw:history first among its fields (ARGV
-- index `at`), its value a placeholder: it becomes the "queued" event at
-- Redis's time here. qw:tags and qw:tracked, when given, follow it: each
-- tag's index (all:tag:<tag>), the index of tags (all:tags) and the tracked
-- set (all:tracked) get the id. Returns the time used (`now`, if given).
local function qw_open_record(argv, at, namespace, id, now)
  if argv[at] ~= 'qw:history' then
    return now
  end
  now = now or qw_now()
  argv[at + 1] = string.format('[{"at":%.6f,"event":"queued"}]', now)
  local i = at + 2
  while argv[i] == 'qw:tags' or argv[i] == 'qw:tracked' do
    if argv[i] == 'qw:tracked' then
      redis.call('SADD', namespace .. 'all:tracked', id)
    else
      local ok, tags = pcall(cjson.decode, argv[i + 1])
      if ok and type(tags) == 'table' then
        for _, tag in ipairs(tags) do
          redis.call('ZADD', namespace .. 'all:tag:' .. tag, now, id)
          redis.call('ZADD', namespace .. 'all:tags', now, tag)
        end
      end
    end
    i = i + 2
  end
  return now
end
