-- Queue jobs for later: write each hash (qw:state "scheduled") and add its
-- id to all:scheduled, scored by its due time on Redis's clock, as one
-- atomic step. The scheduler duty of any manager moves it to its queue
-- (qw:origin) once due. Ids whose hash exists are skipped.
-- KEYS[1] all:scheduled
-- KEYS[2] all:scheduled:wake   a token here wakes a scheduler (see lib/schedule)
-- KEYS[3] all:stats:m:<minute> this minute's counts, where `queued` is added
-- KEYS[4] all:stats:d:<day>    today's counts
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] "in": ARGV[3] is a delay in seconds from now; "at": a unix time
-- ARGV[3] seconds
-- ARGV[4] seconds KEYS[3] is kept, ARGV[5] seconds KEYS[4] is kept
-- ARGV[6] n, the number of field/value pairs of each job
-- ARGV[7..] each job: id, then its n field/value pairs
-- Returns {due, scheduled}: the due time (a string, unix seconds) and how
-- many jobs were scheduled.
-- Retry after a lost reply: safe while the jobs' hashes exist: they are
-- skipped (as enqueue-6.lua).
-- #include record
-- #include schedule
local now = qw_now()
local due = tonumber(ARGV[3])
if ARGV[2] == 'in' then
  due = now + due
end
local width = 2 * tonumber(ARGV[6])
-- Every read before the first write.
local earliest = qw_earliest(KEYS[1])
local fresh = {}
for first = 7, #ARGV, width + 1 do
  fresh[#fresh + 1] = redis.call('EXISTS', ARGV[1] .. ARGV[first]) == 0
end
local scheduled = 0
local i = 0
for first = 7, #ARGV, width + 1 do
  i = i + 1
  if fresh[i] then
    local id = ARGV[first]
    local key = ARGV[1] .. id
    qw_open_record(ARGV, first + 1, qw_namespace(ARGV[1]), id, now)  -- its "queued" event, tags, tracking
    -- HSET in slices: unpack() of a very wide job would overflow Lua's C stack.
    for from = first + 1, first + width, 1000 do
      redis.call('HSET', key, unpack(ARGV, from, math.min(from + 999, first + width)))
    end
    redis.call('HSET', key, 'qw:state', 'scheduled')
    -- A job that keeps a record says so in its fields: note the event
    -- without reading the hash back (every read before the first write).
    for j = first + 1, first + width, 2 do
      if ARGV[j] == 'qw:history' then
        qw_note(key, {event = 'scheduled', ['for'] = due}, now, ARGV[j + 1])
        break
      end
    end
    qw_schedule(KEYS[1], KEYS[2], id, due, earliest)
    if earliest == nil or due < earliest then
      earliest = due
    end
    scheduled = scheduled + 1
  end
end
if scheduled > 0 then
  if redis.call('HINCRBY', KEYS[3], 'queued', scheduled) == scheduled then
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
  if redis.call('HINCRBY', KEYS[4], 'queued', scheduled) == scheduled then
    redis.call('EXPIRE', KEYS[4], ARGV[5])
  end
end
return {string.format('%.6f', due), scheduled}
