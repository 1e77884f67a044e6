-- Drop, from an index of job ids (a zset), the oldest ids whose record has
-- expired: a bounded batch per call, so no call walks an unbounded set.
-- KEYS[1] the index: all:finished, or all:tag:<tag>
-- KEYS[2] all:tags, when KEYS[1] is a tag's index (its tag leaves it once
--         the index is empty); else KEYS[1] again
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] how many of the oldest ids to look at
-- ARGV[3] the tag, when KEYS[1] is a tag's index; else ""
-- ARGV[4] most ids the index may keep (the newest stay), or "" for no cap
-- Returns how many ids were dropped.
-- Retry after a lost reply: safe, idempotent: ids already dropped are gone.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local gone = {}
local alive = 0
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    gone[#gone + 1] = id
    alive = 0
  else
    -- The oldest expire first (mostly): a run of live ones means the rest are live too.
    alive = alive + 1
    if alive >= 50 then
      break
    end
  end
end
local size = redis.call('ZCARD', KEYS[1])
local dropped = #gone
for first = 1, #gone, 1000 do
  redis.call('ZREM', KEYS[1], unpack(gone, first, math.min(first + 999, #gone)))
end
local cap = tonumber(ARGV[4])
if cap and size - #gone > cap then
  dropped = dropped + redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - #gone - cap - 1)
end
if ARGV[3] ~= '' and size - dropped <= 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return dropped
