-- Priorities within a queue (included where a script says "-- #include
-- priority"). Lower runs sooner; 0, the default and a plain producer's
-- LPUSH, is the queue's list itself, first in first out. A job with another
-- priority waits in the queue's priority set, <list>:prio, scored by its
-- priority, its member "<16-digit sequence number>:<id>" so that equal
-- priorities keep their order exactly. While that set holds jobs, one
-- marker, "\0qw:prio:<list>", sits at the head (right end) of the list: a
-- claim that pops it looks at the set. A queue with no prioritised job has
-- no marker, and its claim costs what it did before.

local QW_MARK = '\0qw:prio:'
local QW_MARK_LEN = #QW_MARK

local function qw_is_mark(id)
  return id and string.sub(id, 1, QW_MARK_LEN) == QW_MARK
end

-- The list a marker belongs to.
local function qw_mark_list(mark)
  return string.sub(mark, QW_MARK_LEN + 1)
end

-- Put job `id` (hash `key`) with priority `p` (not 0) in `list`'s priority
-- set; the first one there brings the marker.
local function qw_prio_add(list, namespace, id, p, key)
  local set = list .. ':prio'
  local seq = redis.call('INCR', namespace .. 'all:priority:seq')
  local member = string.format('%016d', seq) .. ':' .. id
  local first = redis.call('ZCARD', set) == 0
  redis.call('ZADD', set, p, member)
  redis.call('HSET', key, 'qw:priority', p, 'qw:prio_member', member)
  if first then
    redis.call('RPUSH', list, QW_MARK .. list)
  end
end

-- Take job `member` out of `list`'s priority set; the last one takes the
-- marker with it. Returns 1 if it was there.
local function qw_prio_remove(list, member)
  local set = list .. ':prio'
  local removed = redis.call('ZREM', set, member)
  if removed == 1 and redis.call('ZCARD', set) == 0 then
    redis.call('LREM', list, -1, QW_MARK .. list)
  end
  return removed
end

-- A claim moved `list`'s marker to the right end of `own`: put the
-- queue's next job there in its place and return its id, or false when the
-- queue is empty (the marker is gone then). Priorities below 0 come before
-- the list's jobs, those above after them. The marker goes back to the head
-- of the list while the set holds jobs.
local function qw_take_marked(list, own)
  local set = list .. ':prio'
  local popped = redis.call('ZPOPMIN', set)
  if popped[1] and tonumber(popped[2]) > 0 then
    -- The list's own jobs (priority 0) first, while it has any.
    local plain = redis.call('RPOP', list)
    while qw_is_mark(plain) do  -- a second marker of this list: drop it
      plain = redis.call('RPOP', list)
    end
    if plain then
      redis.call('LSET', own, -1, plain)
      redis.call('ZADD', set, popped[2], popped[1])  -- back, with its place among equals
      redis.call('RPUSH', list, QW_MARK .. list)
      return plain
    end
  end
  if not popped[1] then
    -- A marker whose set has emptied: drop it, and take from the list.
    redis.call('RPOP', own)
    local id = redis.call('LMOVE', list, own, 'RIGHT', 'RIGHT')
    while qw_is_mark(id) do
      redis.call('RPOP', own)
      id = redis.call('LMOVE', list, own, 'RIGHT', 'RIGHT')
    end
    return id
  end
  local id = string.sub(popped[1], 18)
  redis.call('LSET', own, -1, id)
  if redis.call('ZCARD', set) > 0 then
    redis.call('RPUSH', list, QW_MARK .. list)
  end
  return id
end
