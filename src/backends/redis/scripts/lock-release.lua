-- Deletes each lock that still holds our token and marks its grant as released cleanly in
-- the fence hash; others' locks are left as they are. A lock whose lease ran out while no
-- one else took the scope (the fence hash still names our grant) is marked released too.
-- KEYS     lock key and fence key, pairwise (lock 1, fence 1, lock 2, fence 2, ...)
-- ARGV[1]  owner token
-- ARGV[2..] our grant's fencing token, one per lock
-- Reply: the number of locks deleted.
local n = 0
for i = 1, #KEYS, 2 do
  local lock, fence, grant = KEYS[i], KEYS[i + 1], ARGV[(i + 1) / 2 + 1]
  local owner = redis.call('GET', lock)
  if owner == ARGV[1] then
    n = n + redis.call('DEL', lock)
    redis.call('HSET', fence, 'r', grant)
  elseif not owner and redis.call('HGET', fence, 'n') == grant then
    redis.call('HSET', fence, 'r', grant)
  end
end
return n
