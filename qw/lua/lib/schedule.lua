-- Shared by every script that puts a job in all:scheduled (included where a
-- script says "-- #include schedule"). The managers' schedulers sleep until
-- the earliest due time they read, and block on the wake list
-- (all:scheduled:wake) meanwhile: a job due sooner than that earliest one
-- pushes a token there in the same step, so a scheduler re-reads at once.

-- How long a wake token waits for a scheduler (none may be running).
local QW_WAKE_TTL = 10

-- The earliest due time in `scheduled`, or nil; read before any write.
local function qw_earliest(scheduled)
  local first = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  return tonumber(first[2])
end

-- Wake a scheduler blocked on the wake list. It holds at most one token:
-- one woken scheduler is enough, and the others read the earliest due
-- time again within a second anyway.
local function qw_wake_scheduler(wake)
  redis.call('RPUSH', wake, '1')
  redis.call('LTRIM', wake, -1, -1)
  redis.call('EXPIRE', wake, QW_WAKE_TTL)
end

-- Add `id` to `scheduled` with score `due`; wake a scheduler when it is due
-- before `earliest` (what qw_earliest read before the script's first write).
local function qw_schedule(scheduled, wake, id, due, earliest)
  redis.call('ZADD', scheduled, due, id)
  if earliest == nil or due < earliest then
    qw_wake_scheduler(wake)
  end
end
