-- One round of stateful filter checks, run in the order given.
-- KEYS[i]  the state key of check i
-- ARGV     op, member, a, b for each key, in order (four per key):
--   op "r" (rate limit): a = max, b = ttl ms; the key is a set of the event ids admitted
--     in its window.
--   op "d" (dedupe): a = now ms (the consumer's clock), b = window ms; the key holds
--     "<first event id>|<window end>", so the window follows the consumer's clock, and the
--     key's own TTL only cleans up.
-- Reply: per key, in order, 1 (the event passes) or 0.
local out = {}
for i = 1, #KEYS do
  local op, member, a, b = ARGV[i*4-3], ARGV[i*4-2], tonumber(ARGV[i*4-1]), tonumber(ARGV[i*4])
  local k = KEYS[i]
  if op == 'r' then
    if redis.call('SISMEMBER', k, member) == 1 then out[i] = 1
    elseif redis.call('SCARD', k) < a then
      redis.call('SADD', k, member)
      redis.call('PEXPIRE', k, b)
      out[i] = 1
    else out[i] = 0 end
  else
    local v = redis.call('GET', k)
    local first, ends
    if v then first, ends = string.match(v, '^(.*)|(%d+)$') end
    if first == member then out[i] = 1
    elseif first and tonumber(ends) > a then out[i] = 0
    else
      redis.call('SET', k, member .. '|' .. string.format('%d', a + b), 'PX', b)
      out[i] = 1
    end
  end
end
return out
