-- Deletes the group's consumers that are idle and have nothing pending at this instant:
-- XGROUP DELCONSUMER drops a consumer's pending entries, so one with any is kept.
-- KEYS[1]  stream
-- ARGV[1]  consumer group
-- ARGV[2]  idle time, ms, beyond which a consumer may go
-- Reply: the names of the consumers deleted ({} when the stream or group does not exist).
local ok, list = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local removed = {}
for _, c in ipairs(list) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
