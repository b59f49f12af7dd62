-- Sends the acknowledgements owed, then reads new entries for one consumer: a batch's
-- XACKs ride in the command that reads the next batch.
-- KEYS[1]     the lane (stream) to read
-- KEYS[2..]   lanes with acknowledgements owed
-- ARGV[1]     consumer group
-- ARGV[2]     consumer
-- ARGV[3]     how many entries to read at most
-- ARGV[4..]   for each of KEYS[2..] in order: the number of entry ids, then the ids
-- Reply: XREADGROUP's ({{lane, {{entry id, {field, value, ...}}, ...}}}), nil when nothing is new.
-- XACKs go in chunks (unpack() has a stack limit); XREADGROUP has no BLOCK (not in a script).
local group = ARGV[1]
local a = 4
for k = 2, #KEYS do
  local n = tonumber(ARGV[a])
  for i = a + 1, a + n, 500 do
    redis.call('XACK', KEYS[k], group, unpack(ARGV, i, math.min(i + 499, a + n)))
  end
  a = a + n + 1
end
return redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
