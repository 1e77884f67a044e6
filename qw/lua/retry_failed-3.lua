-- Queue a failed job again, with its attempts reset, as one atomic step.
-- KEYS[1] all:failed
-- KEYS[2] job:<id>
-- KEYS[3] all:jobs (or the job's named queue, all:queue:<name>, from qw:origin)
-- ARGV[1] job id
-- ARGV[2] namespace prefix of every key
-- Returns 1 when queued again, 0 when the id is not in the failed list, -1
-- when it has no data to run (a dangling id: it stays failed), -2 when it
-- depends on a job that failed or was cancelled (retry that one first), 2
-- when it waits again for dependencies not done yet.
-- Retry after a lost reply: safe: the id left all:failed, the retry
-- returns 0 and queues nothing.
-- #include record
if redis.call('LPOS', KEYS[1], ARGV[1]) == false then
  return 0
end
if redis.call('HEXISTS', KEYS[2], 'qw:dangling') == 1 then
  return -1
end
-- A job with dependencies runs only once they are done, a retry as much as
-- its first run: each is looked at again, before anything is written.
local depends = redis.call('HMGET', KEYS[2], 'qw:depends_on', 'qw:on_dep_fail')
local pending = {}
if depends[1] then
  for _, dep in ipairs(cjson.decode(depends[1])) do
    local f = redis.call('HMGET', ARGV[2] .. 'job:' .. dep, 'qw:state', 'qw:failed_at')
    local state = f[1] or (f[2] and 'failed') or false
    if (state == 'failed' or state == 'cancelled') and depends[2] ~= 'run' then
      return -2
    end
    if state and state ~= 'done' and state ~= 'failed' and state ~= 'cancelled' then
      pending[#pending + 1] = dep
    end
  end
end
redis.call('LREM', KEYS[1], 0, ARGV[1])
local queue = KEYS[3]
local origin = redis.call('HGET', KEYS[2], 'qw:origin')
if origin and string.sub(origin, 1, #ARGV[2]) == ARGV[2] then
  local rest = string.sub(origin, #ARGV[2] + 1)
  local manager = string.match(rest, '^([^:]+):')
  if string.match(rest, '^all:queue:[^:]+$') then
    queue = origin  -- a named queue, under our namespace
  elseif manager and manager ~= 'all' then
    queue = ARGV[2] .. manager .. ':jobs'
  end
end
redis.call('HDEL', KEYS[2], 'qw:error', 'qw:traceback', 'qw:failed_at', 'qw:worker', 'qw:finished_at')
redis.call('HSET', KEYS[2], 'qw:attempts', 0, 'qw:state', 'queued')
qw_note(KEYS[2], {event = 'queued', cause = 'retry of the failed job'})
-- Tokens of its failure must not wake a waiter on this new run.
redis.call('DEL', ARGV[2] .. 'all:settled:' .. ARGV[1])
redis.call('HDEL', KEYS[2], 'qw:waiters')
if #pending > 0 then
  for _, dep in ipairs(pending) do
    -- Listed there still, from its first registration, unless that was consumed.
    local list = ARGV[2] .. 'all:dependents:' .. dep
    if not redis.call('LPOS', list, ARGV[1]) then
      redis.call('RPUSH', list, ARGV[1])
    end
    redis.call('HSET', ARGV[2] .. 'job:' .. dep, 'qw:dependents', '1', 'qw:keep', '1')
  end
  redis.call('HSET', KEYS[2], 'qw:deps', #pending, 'qw:state', 'waiting')
  redis.call('ZADD', ARGV[2] .. 'all:waiting', qw_now(), ARGV[1])
  return 2
end
redis.call('LPUSH', queue, ARGV[1])
return 1
