-- Extends the lease of each lock that still holds our token.
-- KEYS     lock keys
-- ARGV[1]  owner token
-- ARGV[2]  lease, ms
-- Reply: the number of locks renewed.
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return n
