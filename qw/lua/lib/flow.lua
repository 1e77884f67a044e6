-- Dependencies (included by lib/record.lua). A job queued with depends_on
-- waits in all:waiting (state "waiting") with qw:deps, the count of its
-- dependencies not yet done; each such dependency lists it in
-- all:dependents:<id> and carries qw:dependents. The step that settles a
-- dependency settles its dependents in the same script: one done counts
-- down (at zero the job enters its queue); one failed or cancelled fails
-- the dependent too (qw:on_dep_fail "fail", and so on down the graph) or
-- counts down all the same ("run", the dependency named in
-- qw:failed_deps). Each list entry is consumed once, so a dependency that
-- settles twice releases once. A script settles at most QW_RELEASE_BUDGET
-- dependents; what is left waits in all:releasing, which managers finish.

local QW_RELEASE_BUDGET = 1000

-- Settle dependent `d` of `dep`, which ended as `how` ("done", "failed",
-- "cancelled"; `why`: its error; `result`: its result, JSON, when done).
-- A dependent that takes its dependencies' results (qw:collect) gets this
-- one as qw:input:<dep>. Returns the reason when `d` fails with it.
local function qw_release_one(namespace, d, dep, how, why, result, now)
  local key = namespace .. 'job:' .. d
  local f = redis.call('HMGET', key, 'qw:state', 'qw:on_dep_fail', 'qw:origin', 'qw:priority', 'qw:collect')
  if f[1] ~= 'waiting' then
    return nil  -- cancelled meanwhile, or failed with another dependency
  end
  if how == 'done' and f[5] then
    redis.call('HSET', key, 'qw:input:' .. dep, (result ~= nil and result ~= '') and result or 'null')
  end
  if how ~= 'done' and f[2] ~= 'run' then
    local reason = 'dependency ' .. dep .. (how == 'cancelled' and ' was cancelled' or (' failed: ' .. (why or '')))
    redis.call('ZREM', namespace .. 'all:waiting', d)
    redis.call('LPUSH', namespace .. 'all:failed', d)
    redis.call('HSET', key, 'qw:error', reason, 'qw:failed_at', now)
    qw_failed_state(key, namespace, d, reason, now)
    return reason
  end
  if how ~= 'done' then
    local failed = redis.call('HGET', key, 'qw:failed_deps')
    local entry = cjson.encode(dep)
    if failed and #failed > 2 then
      failed = string.sub(failed, 1, -2) .. ',' .. entry .. ']'
    else
      failed = '[' .. entry .. ']'
    end
    redis.call('HSET', key, 'qw:failed_deps', failed)
  end
  if redis.call('HINCRBY', key, 'qw:deps', -1) <= 0 then
    redis.call('ZREM', namespace .. 'all:waiting', d)
    redis.call('HSET', key, 'qw:state', 'queued')
    qw_note(key, {event = 'released', by = dep}, now)
    local priority = tonumber(f[4])
    if priority and priority ~= 0 then
      qw_prio_add(f[3], namespace, d, priority, key)
    else
      redis.call('LPUSH', f[3], d)
    end
  end
  return nil
end

-- Job `id` ended as `how` (with `result`, JSON, when done): settle its
-- dependents, and those of every one that fails with it, within the
-- budget; the rest goes to all:releasing.
local function qw_release(namespace, id, how, why, result)
  local work = {{id, how, why, result}}
  local budget = QW_RELEASE_BUDGET
  local releasing = namespace .. 'all:releasing'
  local now = qw_now()
  local i = 1
  while work[i] do
    local dep, outcome, error, value = work[i][1], work[i][2], work[i][3], work[i][4]
    i = i + 1
    local list = namespace .. 'all:dependents:' .. dep
    local batch = redis.call('LRANGE', list, 0, budget - 1)
    if #batch > 0 then
      redis.call('LTRIM', list, #batch, -1)
    end
    budget = budget - #batch
    for _, d in ipairs(batch) do
      local reason = qw_release_one(namespace, d, dep, outcome, error, value, now)
      if reason then
        work[#work + 1] = {d, 'failed', reason, ''}
      end
    end
    if redis.call('EXISTS', list) == 1 then
      redis.call('HSET', releasing, dep, cjson.encode({outcome, error or '', value or ''}))
    else
      redis.call('HDEL', releasing, dep)
    end
    if budget <= 0 then
      for j = i, #work do
        redis.call('HSET', releasing, work[j][1], cjson.encode({work[j][2], work[j][3] or '', work[j][4] or ''}))
      end
      return
    end
  end
end
