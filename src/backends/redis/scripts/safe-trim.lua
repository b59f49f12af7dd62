-- XTRIM MINID ~ up to a cutoff, but never past an entry some consumer group still needs:
-- its oldest pending entry, or the first entry not yet delivered to it. A stream without
-- any group is left alone (nobody read it yet).
-- KEYS[1]  stream
-- ARGV[1]  cutoff id, "<ms>-0": older entries may go
-- Reply: the number of entries removed.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok or #groups == 0 then return 0 end
local floor = ARGV[1]
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  local p = redis.call('XPENDING', KEYS[1], f['name'])
  if p[2] and less(p[2], floor) then floor = p[2] end
  local lm, ls = parse(f['last-delivered-id'])
  local nextId = string.format('%d-%d', lm, ls + 1)
  if less(nextId, floor) then floor = nextId end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor)
