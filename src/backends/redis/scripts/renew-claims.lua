-- Keeps a consumer's claims of stream entries: each entry still pending for the consumer gets
-- its idle time reset (XCLAIM ... JUSTID: no delivery counted), so XAUTOCLAIM leaves it alone
-- for another VISIBILITY_TIMEOUT_MS; an entry another consumer took over is left to it.
-- KEYS[1]  the lane (stream)
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3..] entry ids
-- Reply: the entry ids still held (renewed).
local held = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then held[#held + 1] = ARGV[i] end
end
-- In chunks: unpack() has a stack limit (and expands only as the last argument).
local out = {}
for i = 1, #held, 500 do
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for j = i, math.min(i + 499, #held) do args[#args + 1] = held[j] end
  args[#args + 1] = 'JUSTID'
  for _, id in ipairs(redis.call('XCLAIM', unpack(args))) do out[#out + 1] = id end
end
return out
