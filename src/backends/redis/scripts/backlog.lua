-- Entries of a stream the group has not handled: never delivered (lag) plus delivered and
-- unacknowledged (pending).
-- KEYS[1]  stream
-- ARGV[1]  consumer group
-- Reply: that count; 0 for a stream that does not exist, XLEN when the group does not.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return redis.call('XLEN', KEYS[1]) end
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    local lag = f['lag']
    if type(lag) ~= 'number' then
      -- lag unknown (entries deleted mid-stream): count what follows last-delivered-id
      local after = redis.call('XRANGE', KEYS[1], '(' .. f['last-delivered-id'], '+')
      lag = #after
    end
    return lag + f['pending']
  end
end
return redis.call('XLEN', KEYS[1])
