-- Change the priority of a queued job, as one atomic step: it leaves its
-- place in its queue (the list, or the queue's priority set) and takes the
-- place of a job queued now with the new priority (lib/priority.lua).
-- KEYS[1] job:<id>
-- ARGV[1] job id
-- ARGV[2] namespace prefix of every key
-- ARGV[3] the new priority (0: the list itself)
-- Returns "ok"; else why not: "missing" (no record), "worker" (queued to one
-- worker, whose list keeps arrival order), "lost" (not where it should be),
-- or the state of a job that is not queued ("running", "done", ...).
-- Retry after a lost reply: safe, not idempotent: the job, queued once,
-- takes a new place among the jobs of its priority (behind those queued
-- meanwhile).
-- #include priority
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local f = redis.call('HMGET', KEYS[1], 'qw:state', 'qw:running', 'qw:origin', 'qw:prio_member', 'qw:failed_at')
local state = (f[2] and 'running') or f[1] or (f[5] and 'failed') or 'queued'
if state ~= 'queued' then
  return state
end
local ns, origin = ARGV[2], f[3]
if not origin or string.sub(origin, 1, #ns) ~= ns then
  return 'lost'
end
local rest = string.sub(origin, #ns + 1)
if not string.match(rest, '^all:') and string.match(rest, '^[^:]+:[^:]+:jobs$') then
  return 'worker'
end
local removed
if f[4] then
  removed = qw_prio_remove(origin, f[4])
else
  removed = redis.call('LREM', origin, 0, ARGV[1])
end
if removed == 0 then
  return 'lost'
end
redis.call('HDEL', KEYS[1], 'qw:prio_member', 'qw:priority')
local priority = tonumber(ARGV[3])
if priority ~= 0 then
  qw_prio_add(origin, ns, ARGV[1], priority, KEYS[1])
else
  redis.call('LPUSH', origin, ARGV[1])
end
return 'ok'
