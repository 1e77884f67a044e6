-- Fire a recurring schedule: queue the runs due now and move the schedule
-- to its next due time, as one atomic step that first checks the due time
-- the caller expects (and the definition it computed from). A manager that
-- lost the race (another fired this due time already, or the schedule was
-- changed, paused or removed meanwhile) changes nothing: each due time
-- fires once however many managers try, with no lock.
-- KEYS[1] all:recurring           schedule name -> next due time
-- KEYS[2] all:recurring:<name>    the schedule's definition and state
-- KEYS[3] the list its runs go on  all:jobs, all:queue:<name> or <manager>:jobs
-- KEYS[4] idle hash of that list  <manager>:idle, all:queue:<name>:idle; for
--                                 all:jobs, KEYS[3] again (its waiters wake by themselves)
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] schedule name
-- ARGV[3] due time expected in KEYS[1] (unix seconds); "" runs now, out of
--         sequence (run_recurring_now): nothing checked but the definition,
--         the next due time left alone
-- ARGV[4] definition version expected in KEYS[2]
-- ARGV[5] next due time (unix seconds), or ""
-- ARGV[6] "1": skip (and count) the fire while the last run is unfinished
-- ARGV[7] "1": wake an idle worker from KEYS[4] per run
-- ARGV[8] missed fires to count as skipped (every manager was down)
-- ARGV[9] n, field/value pairs per run
-- ARGV[10..] each run: job id, due time, n field/value pairs
-- Returns {fired, skipped overlap, client id to wake, ...}; {-1} when the
-- expected due time is not there (another manager fired it, or the schedule
-- was paused or removed), {-2} when the definition changed.
-- Retry after a lost reply: safe. The lost call moved the schedule to its
-- next due time, so the retry finds another due time and returns {-1}: each
-- due time fires once. A run out of sequence (ARGV[3] "") names its job ids,
-- which then exist: nothing is queued twice.
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
local state = redis.call('HMGET', KEYS[2], 'version', 'last_job')
if state[1] ~= ARGV[4] then
  return {-2}
end
if ARGV[3] ~= '' and (not score or tonumber(score) ~= tonumber(ARGV[3])) then
  return {-1}
end
local width = 2 * tonumber(ARGV[9])
local busy = false
if ARGV[6] == '1' and state[2] then
  local last = redis.call('HMGET', ARGV[1] .. state[2], 'qw:state', 'qw:failed_at', 'qw:origin')
  busy = last[3] ~= false and last[2] == false and last[1] ~= 'done' and last[1] ~= 'failed'
    and last[1] ~= 'cancelled'
end
local runs = {}
for first = 10, #ARGV, width + 2 do
  if redis.call('EXISTS', ARGV[1] .. ARGV[first]) == 0 then
    runs[#runs + 1] = first
  end
end
local idle = {}
if ARGV[7] == '1' and not busy and #runs > 0 then
  idle = redis.call('HRANDFIELD', KEYS[4], #runs, 'WITHVALUES')
end

-- Writes.
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
  redis.call('HSET', KEYS[2], 'next', ARGV[5])
end
if tonumber(ARGV[8]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'missed', ARGV[8])
end
if busy then
  redis.call('HINCRBY', KEYS[2], 'skipped', #runs)
  return {0, #runs}
end
for _, first in ipairs(runs) do
  local id = ARGV[first]
  local key = ARGV[1] .. id
  for from = first + 2, first + 1 + width, 1000 do
    redis.call('HSET', key, unpack(ARGV, from, math.min(from + 999, first + 1 + width)))
  end
  redis.call('HSET', key, 'qw:state', 'queued')
  redis.call('LPUSH', KEYS[3], id)
  redis.call('HSET', KEYS[2], 'last', ARGV[first + 1], 'last_job', id)
  redis.call('HINCRBY', KEYS[2], 'fired', 1)
end
local reply = {#runs, 0}
for i = 1, #idle, 2 do
  redis.call('HDEL', KEYS[4], idle[i])
  reply[#reply + 1] = idle[i + 1]
end
return reply
