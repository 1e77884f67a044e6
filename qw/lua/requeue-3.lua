-- Put a worker's in-progress jobs back at the head of the queues they came
-- from (the worker died or left), as one atomic step.
-- KEYS[1] <worker>:jobs
-- KEYS[2] <manager>:jobs   its manager's queue
-- KEYS[3] all:jobs
-- ARGV[1] prefix of job hashes, "<namespace>job:"
-- ARGV[2] "1": jobs queued to this very worker stay in its list, for the
--         replacement of the same name; "0": they go to KEYS[2]
-- Returns the number of ids moved out of KEYS[1].
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = {}
local moved = 0
-- Left to right, each pushed on the head (right end): the id at the right end,
-- the one that was running, ends up first in line again.
for i = 1, #ids do
  local id = ids[i]
  local origin = redis.call('HGET', ARGV[1] .. id, 'qw:origin')
  if origin == KEYS[2] or origin == KEYS[3] then
    redis.call('RPUSH', origin, id)
    moved = moved + 1
  elseif ARGV[2] == '1' then
    kept[#kept + 1] = id
  else
    redis.call('RPUSH', KEYS[2], id)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept do
  redis.call('RPUSH', KEYS[1], kept[i])
end
return moved
