-- Queue one job: write its hash and push its id, as one atomic step.
-- KEYS[1] job:<id>            the job's hash
-- KEYS[2] the list to push on  all:jobs, all:queue:<name>, <manager>:jobs or <worker>:jobs
-- KEYS[3] <manager>:workers    checked when queuing to one worker; for all:jobs and
--                              named queues, unused: KEYS[2] again
-- KEYS[4] <manager>:idle       idle workers and the client ids they block on
--         (all:queue:<name>:idle for a named queue; for all:jobs, unused: KEYS[2] again)
-- KEYS[5] all:stats:m:<minute> this minute's counts, where `queued` is added
-- KEYS[6] all:stats:d:<day>    today's counts
-- ARGV[1] job id
-- ARGV[2] worker name that must be a member of KEYS[3], or "" for no check
-- ARGV[3] "worker": wake that worker if idle; "manager": wake one idle worker
--         of the manager (or of the named queue); "": none (all:jobs: its
--         waiters block on it, so the LPUSH wakes them)
-- ARGV[4] seconds KEYS[5] is kept, ARGV[5] seconds KEYS[6] is kept
-- ARGV[6] name of the idle worker the producer unblocks right behind this
--         call (it woke that one last time, and guesses it is idle again), or ""
-- ARGV[7] that worker's client id, or ""
-- ARGV[8] its priority: "" or "0" for none (the list itself); any other
--         integer puts it in KEYS[2]'s priority set (lib/priority.lua)
-- ARGV[9..] field, value, field, value, ...; a job that keeps a record puts
--          qw:history first, then qw:tags if it has any (lib/record.lua)
-- Returns 0 when job:<id> already exists (nothing is changed), else
-- {wake, name, id}: the worker taken off the idle list (name and client id,
-- or "" and "") and, in wake, its client id when the producer must still
-- unblock it (CLIENT UNBLOCK), "" when nobody needs waking or the guess was
-- right, so the unblock sent behind this call does it.
-- Retry after a lost reply: safe while the job's hash exists: the same id
-- returns 0 and changes nothing. A plain job that already ran and was
-- deleted (no record asked for) would be queued again: keep a record
-- (result_ttl, track) where a late retry must be exact.
if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  return redis.error_reply('QW_UNKNOWN_WORKER ' .. ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- #include record
-- #include priority
local namespace = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1] - 4)
qw_open_record(ARGV, 9, namespace, ARGV[1], nil)
-- HSET in slices: unpack() of a very wide job would overflow Lua's C stack.
for first = 9, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
local priority = tonumber(ARGV[8])
if priority and priority ~= 0 then
  qw_prio_add(KEYS[2], namespace, ARGV[1], priority, KEYS[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
-- The first count in a period creates its hash, which must expire.
if redis.call('HINCRBY', KEYS[5], 'queued', 1) == 1 then
  redis.call('EXPIRE', KEYS[5], ARGV[4])
end
if redis.call('HINCRBY', KEYS[6], 'queued', 1) == 1 then
  redis.call('EXPIRE', KEYS[6], ARGV[5])
end
-- Idle workers block on all:jobs; one whose own or manager's queue just got
-- a job must be woken, and is taken off the idle list so no other job wakes it.
local name, wake = '', ''
if ARGV[3] == 'worker' then
  wake = redis.call('HGET', KEYS[4], ARGV[2]) or ''
  if wake ~= '' then
    name = ARGV[2]
  end
elseif ARGV[3] == 'manager' then
  if ARGV[6] ~= '' and redis.call('HGET', KEYS[4], ARGV[6]) == ARGV[7] then
    name, wake = ARGV[6], ARGV[7]
  else
    local idle = redis.call('HRANDFIELD', KEYS[4], 1, 'WITHVALUES')
    if idle[1] then
      name, wake = idle[1], idle[2]
    end
  end
end
if name ~= '' then
  redis.call('HDEL', KEYS[4], name)
end
if wake ~= '' and wake == ARGV[7] then
  return {'', name, wake}
end
return {wake, name, wake}
