-- Move jobs whose retry time has come from the scheduled set back to the
-- head of their queue: all:jobs, their named queue (all:queue:<name>), or
-- their manager's queue (a job queued to one worker goes to that worker's
-- manager). Each move is atomic, so two managers promoting at once never move
-- the same job twice.
-- KEYS[1] all:scheduled
-- KEYS[2] all:jobs
-- ARGV[1] now (unix seconds)
-- ARGV[2] prefix of job hashes, "<namespace>job:"
-- ARGV[3] namespace prefix of every key
-- ARGV[4] most jobs to move in one call
-- Returns the number of jobs moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local moved = 0
for _, id in ipairs(due) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local queue = KEYS[2]
    local origin = redis.call('HGET', ARGV[2] .. id, 'qw:origin')
    if origin and string.sub(origin, 1, #ARGV[3]) == ARGV[3] then
      local rest = string.sub(origin, #ARGV[3] + 1)
      local manager = string.match(rest, '^([^:]+):jobs$') or string.match(rest, '^([^:]+):[^:]+:jobs$')
      if string.match(rest, '^all:queue:[^:]+$') then
        queue = origin  -- a named queue, under our namespace
      elseif manager and manager ~= 'all' then
        queue = ARGV[3] .. manager .. ':jobs'
      end
    end
    redis.call('RPUSH', queue, id)
    if origin then  -- a hash to update (every claimed job has qw:origin)
      redis.call('HSET', ARGV[2] .. id, 'qw:state', 'queued')
    end
    moved = moved + 1
  end
end
return moved
