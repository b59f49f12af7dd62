-- Takes each lock that is free (SET NX PX) or already ours (then extends its lease), with a
-- fencing token per grant from the scope's fence hash (n: last token, r: last released).
-- KEYS     the epoch key, then lock key and fence key pairwise (lock 1, fence 1, lock 2, ...)
-- ARGV[1]  owner token
-- ARGV[2]  lease, ms
-- ARGV[3]  fence hash idle lifetime, ms
-- Reply: first the floor for every scope (0: none): the clock in microseconds when the epoch
--   key was missing - Redis lost its data, so every token handed out before is fenced off.
--   Then per lock, in order, two numbers: the grant's token (0: held by someone else) and
--   the floor it sets (0: none) - the highest earlier token whose holder never released:
--   its lease ran out. A missing fence hash (never seen, idle past its lifetime) starts at
--   the server clock in microseconds, above every token handed out before.
local function micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local out = { 0 }
local epoch = tonumber(redis.call('GET', KEYS[1]))
if not epoch then
  epoch = micros()
  out[1] = epoch
  redis.call('SET', KEYS[1], epoch)
end
for i = 2, #KEYS, 2 do
  local lock, fence = KEYS[i], KEYS[i + 1]
  if redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then
    local n = tonumber(redis.call('HGET', fence, 'n'))
    local floor = 0
    if not n then
      n = micros()
    elseif (tonumber(redis.call('HGET', fence, 'r')) or 0) < n then
      floor = n
    end
    -- Above the epoch's floor too, should the epoch key have gone while this hash stayed.
    n = math.max(n, epoch) + 1
    redis.call('HSET', fence, 'n', n)
    redis.call('PEXPIRE', fence, ARGV[3])
    out[#out + 1] = n
    out[#out + 1] = floor
  elseif redis.call('GET', lock) == ARGV[1] then
    redis.call('PEXPIRE', lock, ARGV[2])
    out[#out + 1] = tonumber(redis.call('HGET', fence, 'n')) or 0
    out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
