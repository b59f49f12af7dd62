-- Events in flight: the pending-entries list of each lane, with each entry's envelope.
-- KEYS[1..]  lanes (streams)
-- ARGV[1]    consumer group
-- ARGV[2]    how many entries per lane at most
-- ARGV[3]    "1": with each entry's fields; "0": without (health counts, no envelopes read)
-- Reply: per entry, six values: lane, entry id, consumer, idle ms, delivery count, and the
-- entry's field/value list ({} when the entry was trimmed away or not asked for). A lane without the group
-- (nothing consumed yet) has nothing in flight.
local out = {}
for _, lane in ipairs(KEYS) do
  local ok, p = pcall(redis.call, 'XPENDING', lane, ARGV[1], '-', '+', tonumber(ARGV[2]))
  if ok then
    for _, x in ipairs(p) do
      local e = {}
      if ARGV[3] == '1' then e = redis.call('XRANGE', lane, x[1], x[1]) end
      out[#out + 1] = lane
      out[#out + 1] = x[1]
      out[#out + 1] = x[2]
      out[#out + 1] = x[3]
      out[#out + 1] = x[4]
      out[#out + 1] = (e[1] and e[1][2]) or {}
    end
  end
end
return out
