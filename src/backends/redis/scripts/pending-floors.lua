-- The oldest entry each stream's group has delivered and not acknowledged: every entry
-- before it is acknowledged (its outcome durable in history), which ordered scopes need.
-- KEYS     streams
-- ARGV[1]  consumer group
-- Reply: per stream, in order, that entry id, or "" when nothing is pending (or no group).
local out = {}
for i, key in ipairs(KEYS) do
  local ok, r = pcall(redis.call, 'XPENDING', key, ARGV[1])
  if ok and type(r) == 'table' and tonumber(r[1]) and tonumber(r[1]) > 0 then
    out[i] = r[2]
  else
    out[i] = ''
  end
end
return out
