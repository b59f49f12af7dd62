-- Reclaims entries whose consumer went silent, with each one's delivery count: XAUTOCLAIM,
-- then XPENDING of each (its count is what makes a death mid-handler an attempt).
-- KEYS[1]  the lane (stream)
-- ARGV[1]  consumer group
-- ARGV[2]  consumer taking the entries over
-- ARGV[3]  minimum idle time, ms
-- ARGV[4]  cursor (start id)
-- ARGV[5]  how many entries at most
-- ARGV[6]  "1": also answer the group's lag
-- Reply: {next cursor, {{entry id, {field, value, ...}}, ...}, {delivery count, ...}, lag},
-- the counts in the order of the entries, lag the entries never delivered to the group (-1
-- when not asked, or when Redis cannot tell: entries deleted mid-stream). Entries trimmed
-- away while pending are not in the list.
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local entries, counts = {}, {}
local claimed = r[2]
for _, e in ipairs(claimed) do
  if type(e) == 'table' and type(e[2]) == 'table' then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    entries[#entries + 1] = e
    counts[#counts + 1] = (p[1] and p[1][4]) or 1
  end
end
local lag = -1
if ARGV[6] == '1' then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == ARGV[1] and type(f['lag']) == 'number' then lag = f['lag'] end
  end
end
return {r[1], entries, counts, lag}
