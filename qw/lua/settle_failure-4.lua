-- A run of a job failed (the target raised, or ran past its time limit):
-- schedule a retry, or move the job to the failed list once its attempts
-- are used up, as one atomic step. Every attempt's error is kept.
-- KEYS[1] <worker>:jobs
-- KEYS[2] all:scheduled
-- KEYS[3] all:failed
-- KEYS[4] job:<id>
-- ARGV[1] job id
-- ARGV[2] claim token, as the claim returned it; must equal qw:running
--         ("" skips the check)
-- ARGV[3] attempts allowed when the job does not say (qw:max_attempts)
-- ARGV[4] seconds until it runs again (from Redis's clock: the scheduler
--         moves it to its queue then), or "" to fail it now
-- ARGV[5] this attempt's error record, a JSON object, appended to qw:errors
-- ARGV[6] error, one line
-- ARGV[7] traceback, or ""
-- ARGV[8] now (unix seconds)
-- ARGV[9] worker name
-- Returns 1 scheduled for a retry, 0 failed, -1 refused (stale token, or the
-- id is no longer in this worker's list).
-- Retry after a lost reply: safe, refused (-1): the lost call cleared
-- qw:running and took the id out of the worker's list, so the attempt is
-- settled once.
-- #include record
-- #include schedule
local attempts = redis.call('HGET', KEYS[4], 'qw:attempts')
local earliest = ARGV[4] ~= '' and qw_earliest(KEYS[2]) or nil
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], 'qw:running') ~= ARGV[2] then
  return -1
end
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return -1
end
redis.call('HDEL', KEYS[4], 'qw:running', 'qw:cancel')
local errors = redis.call('HGET', KEYS[4], 'qw:errors')
if errors and string.sub(errors, -1) == ']' and #errors > 2 then
  errors = string.sub(errors, 1, -2) .. ',' .. ARGV[5] .. ']'
else
  errors = '[' .. ARGV[5] .. ']'
end
redis.call('HSET', KEYS[4], 'qw:errors', errors, 'qw:error', ARGV[6], 'qw:worker', ARGV[9])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[4], 'qw:traceback', ARGV[7])
end
local allowed = tonumber(redis.call('HGET', KEYS[4], 'qw:max_attempts') or ARGV[3]) or 1
if ARGV[4] ~= '' and (tonumber(attempts) or 0) < allowed then
  local due = qw_now() + math.max(0, tonumber(ARGV[4]) or 0)
  qw_schedule(KEYS[2], KEYS[2] .. ':wake', ARGV[1], due, earliest)  -- wake list: same namespace
  redis.call('HSET', KEYS[4], 'qw:state', 'retrying')
  qw_note(KEYS[4], {event = 'retry', ['for'] = due, error = ARGV[6], worker = ARGV[9]}, nil, nil, true)
  return 1
end
redis.call('HSET', KEYS[4], 'qw:failed_at', ARGV[8])
redis.call('LPUSH', KEYS[3], ARGV[1])
qw_failed(KEYS[4], string.sub(KEYS[4], 1, #KEYS[4] - #ARGV[1] - 4), ARGV[1], ARGV[6])
return 0
