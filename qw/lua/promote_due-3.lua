-- Move the jobs that are due (delayed jobs and retries) from all:scheduled
-- to their queue, at most ARGV[3] of them, as one atomic step; several
-- managers may run it at once and a job still moves once. "Due" is Redis's
-- clock. Each goes where it was queued (qw:origin): its named queue
-- all:queue:<name> or its manager's queue (to their head: it is late
-- already), the list of the worker it was queued to if that worker is still
-- registered (else its manager's queue), or else all:jobs. Its state becomes
-- "queued". An idle worker that can take it is taken off its idle hash and
-- returned, for the caller to wake (CLIENT UNBLOCK); waiters on all:jobs
-- wake by themselves.
-- KEYS[1] all:scheduled
-- KEYS[2] all:jobs
-- KEYS[3] all:recurring   read only: its earliest due time is returned too
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] namespace prefix of every key (manager, worker and idle keys are
--         built from it, and from nothing else)
-- ARGV[3] most jobs to move in one call
-- Returns {moved, next, now, recurring, client id, ...}: next is the
-- earliest due time left (a string, unix seconds; "" when none), now Redis's
-- clock (a string), recurring the earliest due time of a recurring schedule
-- (a string, "" when none).
-- Retry after a lost reply: safe. Jobs the lost call moved are out of
-- all:scheduled and move once; the idle workers it took off their idle
-- hashes are not woken by the caller (their next poll finds the jobs).
-- #include record
local now = qw_now()
local ns, prefix = ARGV[2], ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local after = redis.call('ZRANGE', KEYS[1], #due, #due, 'WITHSCORES')
local nxt = after[2] or ''
local recurring = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2] or ''

-- Every read before the first write: where each job goes, and whom to wake.
local moves = {}          -- {id, list, push, exists}
local wanted = {}         -- idle hash -> how many jobs want a worker from it
local order = {}          -- idle hashes, in the order first wanted
local named_worker = {}   -- idle hash -> {worker, ...} wanted by name
for i, id in ipairs(due) do
  local key = prefix .. id
  local exists = redis.call('EXISTS', key) == 1
  local list, push, idle = KEYS[2], 'RPUSH', nil
  local held = exists and redis.call('HMGET', key, 'qw:origin', 'qw:priority') or {}
  local origin, priority = held[1], tonumber(held[2])
  if origin and string.sub(origin, 1, #ns) == ns then
    local rest = string.sub(origin, #ns + 1)
    local manager = string.match(rest, '^([^:]+):jobs$')
    local owner, slot = string.match(rest, '^([^:]+):([^:]+):jobs$')
    if string.match(rest, '^all:queue:[^:]+$') then
      list, idle = origin, origin .. ':idle'
    elseif manager and manager ~= 'all' then
      list, idle = origin, ns .. manager .. ':idle'
    elseif owner and owner ~= 'all' then
      local worker = owner .. ':' .. slot
      idle = ns .. owner .. ':idle'
      if redis.call('SISMEMBER', ns .. owner .. ':workers', worker) == 1 then
        list, push = origin, 'LPUSH'  -- behind what the worker holds, as queuing to it does
        named_worker[idle] = named_worker[idle] or {}
        table.insert(named_worker[idle], worker)
        idle = nil
      else
        list = ns .. owner .. ':jobs'
      end
    end
  end
  if idle then
    if not wanted[idle] then
      wanted[idle] = 0
      order[#order + 1] = idle
    end
    wanted[idle] = wanted[idle] + 1
  end
  moves[i] = {id, list, push, exists, push == 'RPUSH' and priority ~= 0 and priority or nil}
end
local woken = {}          -- {idle hash, worker, client id}
for idle, workers in pairs(named_worker) do
  for _, worker in ipairs(workers) do
    local client = redis.call('HGET', idle, worker)
    if client then
      woken[#woken + 1] = {idle, worker, client}
    end
  end
end
for _, idle in ipairs(order) do
  local picked = redis.call('HRANDFIELD', idle, wanted[idle], 'WITHVALUES')
  for j = 1, #picked, 2 do
    woken[#woken + 1] = {idle, picked[j], picked[j + 1]}
  end
end

for from = 1, #due, 1000 do
  redis.call('ZREM', KEYS[1], unpack(due, from, math.min(from + 999, #due)))
end
for _, move in ipairs(moves) do
  if move[5] then
    qw_prio_add(move[2], ns, move[1], move[5], prefix .. move[1])  -- its place by priority (lib/priority.lua)
  else
    redis.call(move[3], move[2], move[1])
  end
  if move[4] then
    redis.call('HSET', prefix .. move[1], 'qw:state', 'queued')
  end
end
local reply = {#due, nxt, string.format('%.6f', now), recurring}
for _, w in ipairs(woken) do
  redis.call('HDEL', w[1], w[2])
  reply[#reply + 1] = w[3]
end
return reply
