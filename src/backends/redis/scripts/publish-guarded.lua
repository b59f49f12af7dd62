-- Publishes the events none of whose guard keys were seen, and records their keys; when any
-- event is a conflict (a key seen with another digest, for a guard that says so), nothing is
-- appended and no key is written. A key holds "<event id>\n<digest>" (a publish-once key,
-- the id alone, reads as an empty digest), and exists if and only if its event was appended.
-- KEYS[1..n]      the stream of each event
-- KEYS[n+1..]     every guard key, in event order
-- KEYS[#KEYS]     wake-up gate
-- ARGV[1]  guard window, seconds
-- ARGV[2]  trim strategy: MAXLEN or MINID (approximate)
-- ARGV[3]  trim threshold
-- ARGV[4]  wake window, ms ("0": do not ask for a wake-up)
-- ARGV[5]  the entry's field name
-- ARGV[6]  n, the number of events
-- then per event: envelope JSON, event id, guard count, and per guard: digest, mode
--   (mode "conflict": another digest refuses the whole publish; "duplicate": any sighting
--   makes the event a duplicate)
-- Reply: {conflict 0|1, opened a wake window 0|1, the gate's PTTL, then per event: status
--   (1 stored, 2 duplicate, 3 conflict), the first event's id (or ''), the 1-based index of
--   the guard that was seen (or 0)}.
local window, trimType, trimThr, wakeMs, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local n = tonumber(ARGV[6])
local a, k = 7, n + 1
local items, seen, conflict = {}, {}, false
for i = 1, n do
  local item = { json = ARGV[a], id = ARGV[a + 1], status = 1, guards = {} }
  local g = tonumber(ARGV[a + 2])
  a = a + 3
  for j = 1, g do
    local key, digest, mode = KEYS[k], ARGV[a], ARGV[a + 1]
    k, a = k + 1, a + 2
    item.guards[j] = { key, digest }
    if item.status == 1 then
      local v = seen[key] or redis.call('GET', key)
      if v then
        local sep = string.find(v, '\n', 1, true)
        local d = sep and string.sub(v, sep + 1) or ''
        item.first, item.hit = sep and string.sub(v, 1, sep - 1) or v, j
        if d == digest or mode == 'duplicate' then item.status = 2 else item.status = 3; conflict = true end
      end
    end
  end
  if item.status == 1 then
    for _, gd in ipairs(item.guards) do seen[gd[1]] = item.id .. '\n' .. gd[2] end
  end
  items[i] = item
end
local out = { conflict and 1 or 0, 0, 0 }
if not conflict then
  local stored = 0
  for i, item in ipairs(items) do
    if item.status == 1 then
      redis.call('XADD', KEYS[i], trimType, '~', trimThr, '*', field, item.json)
      for _, gd in ipairs(item.guards) do redis.call('SET', gd[1], item.id .. '\n' .. gd[2], 'EX', window) end
      stored = stored + 1
    end
  end
  if stored > 0 and wakeMs ~= '0' then
    local opened = redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', wakeMs)
    out[2] = opened and 1 or 0
    out[3] = redis.call('PTTL', KEYS[#KEYS])
  end
end
for _, item in ipairs(items) do
  out[#out + 1] = item.status
  out[#out + 1] = item.first or ''
  out[#out + 1] = item.hit or 0
end
return out
