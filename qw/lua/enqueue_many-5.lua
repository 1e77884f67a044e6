-- Queue a batch of jobs onto one list, as one atomic step: each job's hash
-- and id together, as enqueue-6.lua does for one job.
-- KEYS[1] the list to push on  all:jobs, all:queue:<name>, <manager>:jobs or <worker>:jobs
-- KEYS[2] <manager>:workers    checked when queuing to one worker; for all:jobs and
--                              named queues, unused: KEYS[1] again
-- KEYS[3] <manager>:idle       idle workers and the client ids they block on
--         (all:queue:<name>:idle for a named queue; for all:jobs, unused: KEYS[1] again)
-- KEYS[4] all:stats:m:<minute> this minute's counts, where `queued` is added
-- KEYS[5] all:stats:d:<day>    today's counts
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] worker name that must be a member of KEYS[2], or "" for no check
-- ARGV[3] "worker" / "manager" / "": whom to wake (see enqueue-6.lua)
-- ARGV[4] number of fields, n, that every job in the batch has
-- ARGV[5] seconds KEYS[4] is kept, ARGV[6] seconds KEYS[5] is kept
-- ARGV[7] the jobs' priority: "" or "0" for none, else as in enqueue-6.lua
-- ARGV[8..] the jobs, each as: id, then n fields as field, value pairs (a
--           job that keeps a record starts with qw:history: lib/record.lua)
-- Returns the client ids to wake (CLIENT UNBLOCK), possibly none. Jobs whose
-- hash already exists are skipped.
-- Retry after a lost reply: safe while the jobs' hashes exist: jobs the
-- lost call queued are skipped (as enqueue-6.lua: a plain job already run
-- and deleted would be queued again). qw's own resend after NOSCRIPT relies
-- on this.
if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then
  return redis.error_reply('QW_UNKNOWN_WORKER ' .. ARGV[2])
end
-- #include record
-- #include priority
local width = 1 + 2 * tonumber(ARGV[4])
local queued = 0
local namespace = qw_namespace(ARGV[1])
local now = nil
local priority = tonumber(ARGV[7])
if priority == 0 then
  priority = nil
end
for first = 8, #ARGV, width do
  local id = ARGV[first]
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 0 then
    now = qw_open_record(ARGV, first + 1, namespace, id, now)
    redis.call('HSET', key, unpack(ARGV, first + 1, first + width - 1))
    if priority then
      qw_prio_add(KEYS[1], namespace, id, priority, key)
    else
      redis.call('LPUSH', KEYS[1], id)
    end
    queued = queued + 1
  end
end
if queued > 0 then
  -- The first count in a period creates its hash, which must expire.
  if redis.call('HINCRBY', KEYS[4], 'queued', queued) == queued then
    redis.call('EXPIRE', KEYS[4], ARGV[5])
  end
  if redis.call('HINCRBY', KEYS[5], 'queued', queued) == queued then
    redis.call('EXPIRE', KEYS[5], ARGV[6])
  end
end
local wake = {}
if queued > 0 and ARGV[3] == 'worker' then
  local id = redis.call('HGET', KEYS[3], ARGV[2])
  if id then
    redis.call('HDEL', KEYS[3], ARGV[2])
    wake[1] = id
  end
elseif queued > 0 and ARGV[3] == 'manager' then
  -- One idle worker per job, as many as there are.
  local idle = redis.call('HRANDFIELD', KEYS[3], queued, 'WITHVALUES')
  for i = 1, #idle, 2 do
    redis.call('HDEL', KEYS[3], idle[i])
    wake[#wake + 1] = idle[i + 1]
  end
end
return wake
