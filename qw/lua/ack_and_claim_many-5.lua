-- Acknowledge the jobs a prefetching worker has finished and claim its next
-- batch: the steady-state step of a worker run with a prefetch above 1, one
-- round trip per batch. ack_and_claim-5.lua is the same for one job.
-- KEYS[1] <worker>:jobs    the worker's in-progress list
-- KEYS[2] <manager>:jobs   its manager's queue
-- KEYS[3] all:jobs         the shared queue; with named queues, the one the
--                          worker blocks on
-- KEYS[4] all:failed
-- KEYS[5] <manager>:idle   worker name -> client id of its blocking connection
-- KEYS[6 ..]               with named queues, as in ack_and_claim-5.lua; n is
--                          the last ARGV, after the jobs to acknowledge
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] now, in seconds (recorded when an id without a hash is failed)
-- ARGV[3] id the worker has just moved from all:jobs with BLMOVE; or "*": this
--         call was sent right behind such a BLMOVE (see ack_and_claim-5.lua);
--         or ""
-- ARGV[4] worker name
-- ARGV[5] when nothing is found: the client id the worker will block on, or ""
-- ARGV[6] "1" if the worker's previous claim found nothing, else "0"
-- ARGV[7] how many jobs to claim; 0 only acknowledges
-- ARGV[8] n, the number of jobs to acknowledge
-- ARGV[9..] n pairs: id, claim token, as ARGV[2] and [6] of
--           ack_and_claim-5.lua; then k, and k triples for those of them
--           whose record the worker keeps: the pair's number (1..n),
--           seconds to keep the record and its result ("" or JSON), as
--           ARGV[11] and [12] there (a plain job sends none of this); then,
--           with named queues, their count
-- Returns {acked, id, attempt, token, {field, value, ...}, id, ...}: how
-- many acknowledgements were applied (the others were stale), then each
-- claimed job with its hash as one nested array.
-- The worker claims only once it holds no claimed job: every id of its list
-- that is claimed (has qw:running) is acknowledged by this call or was
-- settled before, so the unclaimed ids of its own list are at the right end.
-- Retry after a lost reply: safe, not idempotent, as ack_and_claim-5.lua:
-- acknowledgements already applied are refused, and the ids the lost call
-- claimed, at the right end of the own list, are claimed again with new
-- tokens (each job runs once; each loses an attempt to the lost reply).
local acked = 0
local n = tonumber(ARGV[8])
local k_at = 9 + 2 * n
local k = tonumber(ARGV[k_at])
local given = {}  -- pair number -> where its triple starts
for j = 1, k do
  given[tonumber(ARGV[k_at + 3 * j - 2])] = k_at + 3 * j - 2
end
local keeping = {}
for i = 1, n do
  local id = ARGV[7 + 2 * i]
  local key = ARGV[1] .. id
  -- As in ack_and_claim-5.lua: a job without qw:keep is deleted, and only
  -- the others need the record's helpers.
  local held = redis.call('HMGET', key, 'qw:running', 'qw:keep')
  if held[1] == ARGV[8 + 2 * i] and redis.call('LREM', KEYS[1], -1, id) == 1 then
    if not held[2] and not given[i] then
      redis.call('DEL', key)
    else
      keeping[#keeping + 1] = i
    end
    acked = acked + 1
  end
end
if #keeping > 0 then
  -- #include record
  local namespace = qw_namespace(ARGV[1])
  for _, i in ipairs(keeping) do
    local id = ARGV[7 + 2 * i]
    local key = ARGV[1] .. id
    local kept = redis.call('HMGET', key, 'qw:waiters', 'qw:tracked', 'qw:result_ttl', 'qw:dependents')
    local at = given[i]
    local ttl = (at and tonumber(ARGV[at + 1])) or tonumber(kept[3]) or 0
    qw_done(key, namespace, id, ttl, at and ARGV[at + 2] or '', kept[1], kept[2], kept[4])
  end
end
local want = tonumber(ARGV[7])
local reply = {acked}
if want < 1 then
  return reply
end
local sources, idle_from = {KEYS[2], KEYS[3]}, #KEYS + 1
if #KEYS > 5 then
  local count = tonumber(ARGV[k_at + 3 * k + 1])
  sources = {KEYS[2]}
  for i = 1, count do
    sources[i + 1] = KEYS[5 + i]
  end
  idle_from = 6 + count
end
if ARGV[6] == '1' then
  redis.call('HDEL', KEYS[5], ARGV[4])
  for i = idle_from, #KEYS do
    redis.call('HDEL', KEYS[i], ARGV[4])
  end
end
-- Own list first, from the right (its ids stay where they are), then the
-- manager's queue, then the shared one (moved to the right end of ours).
local claimed = 0
local own = true
for _ = 1, want + 100 do
  if claimed == want then
    break
  end
  local origin = KEYS[1]
  local id = false
  if own then
    id = redis.call('LINDEX', KEYS[1], -(claimed + 1))
    own = id and true or false
    if id and string.byte(id, 1) == 0 then
      -- #include priority
      if qw_is_mark(id) then
        -- A priority marker a BLMOVE brought: back to its queue (see ack_and_claim-5.lua).
        redis.call('LREM', KEYS[1], -1, id)
        redis.call('RPUSH', qw_mark_list(id), id)
        id, own = false, false
      end
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
    break
  end
  local key = ARGV[1] .. id
  if id == ARGV[3] or (claimed == 0 and ARGV[3] == '*' and origin == KEYS[1]
      and redis.call('HEXISTS', key, 'qw:origin') == 0) then
    origin = KEYS[3]
  end
  if redis.call('EXISTS', key) == 0 then
    -- A dangling id (queued without its hash): fail it with the reason.
    redis.call('LREM', KEYS[1], -1, id)
    redis.call('LPUSH', KEYS[4], id)
    redis.call('HSET', key, 'qw:error', 'no data: ' .. key .. ' did not exist when the job was claimed',
      'qw:failed_at', ARGV[2], 'qw:origin', origin, 'qw:dangling', '1')
  else
    local attempt = redis.call('HINCRBY', key, 'qw:attempts', 1)
    local token = redis.call('HINCRBY', key, 'qw:claims', 1)
    if origin == KEYS[1] then
      redis.call('HSETNX', key, 'qw:origin', origin)
      redis.call('HSET', key, 'qw:running', token)
    else
      redis.call('HSET', key, 'qw:origin', origin, 'qw:running', token)
    end
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
      if fields[i] == 'qw:history' then
        -- As in ack_and_claim-5.lua: a record's start, and its worker.
        local t = redis.call('TIME')  -- as text: see qw_now_text in lib/record.lua
        redis.call('HSET', key, 'qw:started_at', t[1] .. '.' .. string.rep('0', 6 - #t[2]) .. t[2], 'qw:worker', ARGV[4])
        break
      end
    end
    reply[#reply + 1] = id
    reply[#reply + 1] = attempt
    reply[#reply + 1] = token
    reply[#reply + 1] = fields  -- nested, as in ack_and_claim-5.lua
    claimed = claimed + 1
  end
end
if claimed == 0 and ARGV[5] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
  for i = idle_from, #KEYS do
    redis.call('HSET', KEYS[i], ARGV[4], ARGV[5])
  end
end
return reply
