-- A worker stopped a run because the job was cancelled (qw:cancel): take it
-- out of the worker's list and keep it as "cancelled", never retried, as
-- one atomic step.
-- KEYS[1] <worker>:jobs
-- KEYS[2] job:<id>
-- ARGV[1] job id
-- ARGV[2] claim token, as the claim returned it; must equal qw:running
-- ARGV[3] namespace prefix of every key
-- ARGV[4] seconds to keep the record when the job does not say (qw:result_ttl)
-- Returns 1, or -1 refused (stale token, or the id left this worker's list).
-- Retry after a lost reply: safe, refused (-1): the lost call settled it.
-- #include record
local f = redis.call('HMGET', KEYS[2], 'qw:running', 'qw:waiters', 'qw:tracked', 'qw:result_ttl')
if f[1] ~= ARGV[2] then
  return -1
end
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return -1
end
qw_cancelled(KEYS[2], ARGV[3], ARGV[1], tonumber(ARGV[4]) or 600, f[2], f[3], f[4])
return 1
