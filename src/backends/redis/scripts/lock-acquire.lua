-- Takes each lock that is free (SET NX PX) or already ours (then extends its lease).
-- KEYS     lock keys
-- ARGV[1]  owner token
-- ARGV[2]  lease, ms
-- Reply: per key, in order, 1 (held by us now) or 0 (held by someone else).
local out = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then out[i] = 1
  elseif redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else out[i] = 0 end
end
return out
