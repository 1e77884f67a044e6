-- Acknowledge the job a worker just finished and claim its next one: the
-- steady-state step of a worker, one round trip per job.
-- KEYS[1] <worker>:jobs    the worker's in-progress list
-- KEYS[2] <manager>:jobs   its manager's queue
-- KEYS[3] all:jobs         the shared queue; with named queues (below), the
--                          queue the worker blocks on (BLMOVE) when idle
-- KEYS[4] all:failed
-- KEYS[5] <manager>:idle   worker name -> client id of its blocking connection
-- With named queues only (a manager run with --queue), the keys go on:
-- KEYS[6 .. 5+n]           the queues tried after KEYS[2], in this claim's
--                          order (named queues all:queue:<name>, and all:jobs
--                          if the manager serves it); n is ARGV[10]
-- KEYS[6+n ..]             all:queue:<name>:idle of each named queue the
--                          worker does not block on, where it is listed as
--                          idle beside KEYS[5] (a producer wakes it from there)
-- Without them the order is KEYS[2], then KEYS[3].
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] id to acknowledge, or ""
-- ARGV[3] "1" to claim after acknowledging, "0" to acknowledge only
-- ARGV[4] now, in seconds (recorded when an id without a hash is failed)
-- ARGV[5] id the worker has just moved from all:jobs with BLMOVE; or "*": this
--         call was sent right behind such a BLMOVE, so the head of the own
--         list, if it has no qw:origin (a plain producer's job), came from
--         all:jobs; or ""
-- ARGV[6] claim token of ARGV[2], as its claim returned it ("" skips the check)
-- ARGV[7] worker name
-- ARGV[8] when nothing is found: the client id the worker will block on (it is
--         recorded in KEYS[5] so that a producer can wake it), or ""
-- ARGV[9] "1" if the worker's previous claim found nothing (so it may be listed
--         in KEYS[5], and is taken off now), else "0"
-- ARGV[10] n, with named queues (see KEYS); else ""
-- ARGV[11] seconds to keep ARGV[2]'s record (its result, state and history)
--          after it is done; absent or "": its own qw:result_ttl, if any; 0
--          deletes its hash, as a plain job's (a waiter or tracking still
--          keeps it: lib/record.lua)
-- ARGV[12] its result, JSON, or "" (kept only with the record)
-- Returns {acked} when nothing was claimed, else
--         {acked, id, attempt, token, {field, value, field, value, ...}}
-- acked is 1 when ARGV[2] was acknowledged (its hash deleted), 0 when the
-- acknowledgement was refused: the id left this worker's list, or the run
-- was taken back (requeued, perhaps claimed again), so this run is stale.
-- qw:running holds the token of the run in progress, and only while it is in
-- progress: the fencing token. Tokens come from qw:claims, which only grows
-- (qw:attempts can be given back when a stop interrupts a run).
-- Retry after a lost reply: safe, not idempotent. The acknowledgement is
-- refused the second time (acked 0: the id left the list); the claim finds
-- the id the lost call claimed at the right end of the own list and claims
-- it again with a new token, so the job runs once, but that lost reply costs
-- it an attempt (qw:attempts counts both claims).
local acked = 0
if ARGV[2] ~= '' then
  local key = ARGV[1] .. ARGV[2]
  -- qw:keep says the job keeps something when done (a record, a result, a
  -- waiter, tracking, dependents): only then are those fields read, and the
  -- record's helpers defined (lib/record.lua), so a plain job pays for none.
  local held = redis.call('HMGET', key, 'qw:running', 'qw:keep')
  local current = ARGV[6] == '' or held[1] == ARGV[6]
  if current and redis.call('LREM', KEYS[1], -1, ARGV[2]) == 1 then
    local ttl = tonumber(ARGV[11])
    if not held[2] and (ttl or 0) <= 0 then
      redis.call('DEL', key)
    else
      -- #include record
      local kept = redis.call('HMGET', key, 'qw:waiters', 'qw:tracked', 'qw:result_ttl', 'qw:dependents')
      qw_done(key, qw_namespace(ARGV[1]), ARGV[2], ttl or tonumber(kept[3]) or 0, ARGV[12] or '',
        kept[1], kept[2], kept[4])
    end
    acked = 1
  end
end
if ARGV[3] ~= '1' then
  return {acked}
end
local sources, idle_from = {KEYS[2], KEYS[3]}, #KEYS + 1
if #KEYS > 5 then
  local n = tonumber(ARGV[10])
  sources = {KEYS[2]}
  for i = 1, n do
    sources[i + 1] = KEYS[5 + i]
  end
  idle_from = 6 + n
end
if ARGV[9] == '1' then
  redis.call('HDEL', KEYS[5], ARGV[7])
  for i = idle_from, #KEYS do
    redis.call('HDEL', KEYS[i], ARGV[7])
  end
end
-- Own list first (jobs queued to this worker, or left from before), then the
-- manager's queue, then the shared one (or the named queues, in order). The
-- running id stays at the right end.
for _ = 1, 100 do
  local origin = KEYS[1]
  local id = redis.call('LINDEX', KEYS[1], -1)
  if id and string.byte(id, 1) == 0 then
    -- #include priority
    if qw_is_mark(id) then
      -- A priority marker a BLMOVE brought: its queue's next job takes its
      -- place (lib/priority.lua).
      origin = qw_mark_list(id)
      id = qw_take_marked(origin, KEYS[1])
    end
  end
  local i = 1
  while not id and sources[i] do
    origin = sources[i]
    id = redis.call('LMOVE', origin, KEYS[1], 'RIGHT', 'RIGHT')
    if id and string.byte(id, 1) == 0 then
      -- #include priority
      if qw_is_mark(id) then
        id = qw_take_marked(origin, KEYS[1])
      end
    end
    i = i + 1
  end
  if not id then
    if ARGV[8] ~= '' then
      redis.call('HSET', KEYS[5], ARGV[7], ARGV[8])
      for i = idle_from, #KEYS do
        redis.call('HSET', KEYS[i], ARGV[7], ARGV[8])
      end
    end
    return {acked}
  end
  local key = ARGV[1] .. id
  if id == ARGV[5] or (ARGV[5] == '*' and origin == KEYS[1] and redis.call('HEXISTS', key, 'qw:origin') == 0) then
    origin = KEYS[3]
  end
  if redis.call('EXISTS', key) == 0 then
    -- A dangling id (queued without its hash): fail it with the reason and
    -- look further, rather than hand the worker a job with no data.
    redis.call('LREM', KEYS[1], -1, id)
    redis.call('LPUSH', KEYS[4], id)
    redis.call('HSET', key, 'qw:error', 'no data: ' .. key .. ' did not exist when the job was claimed',
      'qw:failed_at', ARGV[4], 'qw:origin', origin, 'qw:dangling', '1')
  else
    local attempt = redis.call('HINCRBY', key, 'qw:attempts', 1)
    local token = redis.call('HINCRBY', key, 'qw:claims', 1)
    if origin == KEYS[1] then
      redis.call('HSETNX', key, 'qw:origin', origin)
      redis.call('HSET', key, 'qw:running', token)
    else
      redis.call('HSET', key, 'qw:origin', origin, 'qw:running', token)
    end
    -- The hash goes back as one nested array, as HGETALL gave it: copying
    -- its items into the reply cost more than the rest of the claim.
    local fields = redis.call('HGETALL', key)
    local reply = {acked, id, attempt, token, fields}
    for i = 1, #fields, 2 do
      if fields[i] == 'qw:history' then
        -- A job that keeps a record: when it started, and where (the
        -- "claimed" event of its history, lib/record.lua).
        local t = redis.call('TIME')  -- as text: see qw_now_text in lib/record.lua
        redis.call('HSET', key, 'qw:started_at', t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2], 'qw:worker', ARGV[7])
        break
      end
    end
    return reply
  end
end
return {acked}
