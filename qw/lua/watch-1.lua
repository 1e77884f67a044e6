-- What a waiter on one job does before it blocks: one look at the record.
-- KEYS[1] job:<id>
-- ARGV[1] "1": if the job has not settled, count this waiter in qw:waiters,
--         so that the step that settles it pushes a token on
--         all:settled:<id> for it (see lib/record.lua); "0": only look
-- Returns 0 when the job has no record (never queued, or expired), else its
-- state: "done", "failed" or "cancelled" when settled (read the record
-- now), anything else when not ("queued" for a plain producer's job).
-- Retry after a lost reply: safe, not idempotent: with ARGV[1] "1" the
-- waiter is counted twice, and the settling step pushes one more token
-- (all:settled:<id> expires).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local state = redis.call('HMGET', KEYS[1], 'qw:state', 'qw:running', 'qw:failed_at')
local now = (state[2] and 'running') or state[1] or (state[3] and 'failed') or 'queued'
if now == 'done' or now == 'failed' or now == 'cancelled' then
  return now
end
if ARGV[1] == '1' then
  redis.call('HINCRBY', KEYS[1], 'qw:waiters', 1)
  redis.call('HSET', KEYS[1], 'qw:keep', '1')  -- the acknowledgement reads qw:waiters then
end
return now
