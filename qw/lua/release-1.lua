-- Go on with the dependents a settling script left for lack of budget
-- (lib/flow.lua): one entry of all:releasing per call.
-- KEYS[1] all:releasing
-- ARGV[1] namespace prefix of every key
-- ARGV[2] the settled job's id (a field of KEYS[1])
-- Returns 1 when it was there, 0 when another manager took it first.
-- Retry after a lost reply: safe: the entry is gone, the retry returns 0,
-- and the dependents are released once.
-- #include record
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if not entry then
  return 0
end
local how = cjson.decode(entry)
redis.call('HDEL', KEYS[1], ARGV[2])
qw_release(ARGV[1], ARGV[2], how[1], how[2], how[3])
return 1
