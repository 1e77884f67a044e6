-- Create or replace a recurring schedule. An identical definition (same
-- version) changes nothing, so every manager that loads a module with
-- @qw.periodic may write it at start; a changed one replaces the
-- definition and the next due time, and keeps the counts and the last fire.
-- KEYS[1] all:recurring           schedule name -> next due time
-- KEYS[2] all:recurring:<name>    the schedule's definition and state
-- KEYS[3] all:scheduled:wake      a token here wakes a scheduler, which reads
--                                 the new due time at once (see lib/schedule)
-- ARGV[1] schedule name
-- ARGV[2] definition (JSON)
-- ARGV[3] its version
-- ARGV[4] next due time (unix seconds)
-- ARGV[5] now (unix seconds)
-- Returns 0 unchanged, 1 created, 2 replaced.
-- Retry after a lost reply: safe, idempotent: the same version returns 0.
-- #include schedule
local state = redis.call('HMGET', KEYS[2], 'version', 'paused')
if state[1] == ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[2], 'definition', ARGV[2], 'version', ARGV[3], 'next', ARGV[4], 'updated', ARGV[5])
if not state[1] then
  redis.call('HSET', KEYS[2], 'created', ARGV[5], 'fired', 0, 'skipped', 0, 'missed', 0)
end
if state[2] ~= '1' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  qw_wake_scheduler(KEYS[3])
end
if state[1] then
  return 2
end
return 1
