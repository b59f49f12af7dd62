-- Deletes each lock that still holds our token; others' locks are left as they are.
-- KEYS     lock keys
-- ARGV[1]  owner token
-- Reply: the number of locks deleted.
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
