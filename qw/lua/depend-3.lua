-- Queue one job that depends on others, as one atomic step: it waits in
-- all:waiting until each dependency is done, then enters its queue (see
-- lib/flow.lua); if none is left to wait for, it is queued now. Every
-- dependency is read before anything is written.
-- KEYS[1] job:<id>
-- KEYS[2] the list it goes on once released: all:jobs, all:queue:<name> or <manager>:jobs
-- KEYS[3] all:waiting
-- ARGV[1] job id
-- ARGV[2] namespace prefix of every key
-- ARGV[3] its priority ("" or "0": none)
-- ARGV[4] "fail" or "run": what a dependency that fails for good (or is
--         cancelled) does to it
-- ARGV[5] "chain" or "group": the job takes its dependencies' results as
--         arguments (each kept as qw:input:<id> in its hash when that one is
--         done); or ""
-- ARGV[6] n, the number of dependencies
-- ARGV[7 .. 6+n] their ids
-- ARGV[7+n ..] field, value, ...; a job that keeps a record puts qw:history
--         first (lib/record.lua)
-- Returns 0 when job:<id> exists already (nothing changed), else its state:
-- "waiting", "queued" (nothing to wait for) or "failed" (a dependency had
-- failed: the reason is its error); an error QW_NO_DEPENDENCY <id> for a
-- dependency with no record (nothing written).
-- Retry after a lost reply: safe while the job's hash exists (the retry
-- returns 0: nothing changed). A job that already ran and left no record
-- (none was asked for) would be queued again.
-- #include record
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ns, id = ARGV[2], ARGV[1]
local n = tonumber(ARGV[6])
local pending, failed, inputs = {}, {}, {}
for i = 7, 6 + n do
  local dep = ARGV[i]
  local key = ns .. 'job:' .. dep
  if redis.call('EXISTS', key) == 0 then
    return redis.error_reply('QW_NO_DEPENDENCY ' .. dep)
  end
  local f = redis.call('HMGET', key, 'qw:state', 'qw:running', 'qw:failed_at', 'qw:error', 'qw:result')
  local state = (f[2] and 'running') or f[1] or (f[3] and 'failed') or 'queued'
  if state == 'failed' or state == 'cancelled' then
    failed[#failed + 1] = {dep, state, f[4] or ''}
  elseif state ~= 'done' then
    pending[#pending + 1] = dep
  elseif ARGV[5] ~= '' then
    inputs[#inputs + 1] = 'qw:input:' .. dep
    inputs[#inputs + 1] = f[5] or 'null'
  end
end
local first = 7 + n
local now = qw_open_record(ARGV, first, ns, id, nil) or qw_now()
for i = first, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local depends = {}
for i = 7, 6 + n do
  depends[#depends + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 'qw:depends_on', cjson.encode(depends), 'qw:on_dep_fail', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'qw:collect', ARGV[5])
  for i = 1, #inputs, 1000 do  -- in slices: unpack() of a large group would overflow Lua's C stack
    redis.call('HSET', KEYS[1], unpack(inputs, i, math.min(i + 999, #inputs)))
  end
end
if #failed > 0 and ARGV[4] ~= 'run' then
  local dep, state, error = failed[1][1], failed[1][2], failed[1][3]
  local reason = 'dependency ' .. dep .. (state == 'cancelled' and ' was cancelled' or (' failed: ' .. error))
  redis.call('LPUSH', ns .. 'all:failed', id)
  redis.call('HSET', KEYS[1], 'qw:error', reason, 'qw:failed_at', now)
  qw_failed_state(KEYS[1], ns, id, reason, now)
  return 'failed'
end
if #failed > 0 then
  local names = {}
  for _, entry in ipairs(failed) do
    names[#names + 1] = entry[1]
  end
  redis.call('HSET', KEYS[1], 'qw:failed_deps', cjson.encode(names))
end
local priority = tonumber(ARGV[3])
if priority then
  redis.call('HSET', KEYS[1], 'qw:priority', priority)
end
if #pending == 0 then
  if priority and priority ~= 0 then
    qw_prio_add(KEYS[2], ns, id, priority, KEYS[1])
  else
    redis.call('LPUSH', KEYS[2], id)
  end
  return 'queued'
end
for _, dep in ipairs(pending) do
  redis.call('RPUSH', ns .. 'all:dependents:' .. dep, id)
  redis.call('HSET', ns .. 'job:' .. dep, 'qw:dependents', '1', 'qw:keep', '1')
end
redis.call('HSET', KEYS[1], 'qw:deps', #pending, 'qw:state', 'waiting')
redis.call('ZADD', KEYS[3], now, id)
qw_note(KEYS[1], {event = 'waiting', on = #pending}, now)  -- how many; qw:depends_on says which
return 'waiting'
