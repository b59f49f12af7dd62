-- Publishes one event unless its dedupe key says it was published already. The key exists
-- if and only if the XADD happened: it is set after the XADD, in the same script.
-- KEYS[1]  dedupe key (holds the first event's id)
-- KEYS[2]  stream
-- KEYS[3]  wake-up gate
-- ARGV[1]  event id
-- ARGV[2]  dedupe window, seconds
-- ARGV[3]  envelope JSON
-- ARGV[4]  trim strategy: MAXLEN or MINID (approximate)
-- ARGV[5]  trim threshold
-- ARGV[6]  wake window, ms ("0": do not ask for a wake-up)
-- ARGV[7]  the entry's field name
-- Reply: {0, first event id} for a duplicate, else {1, opened a wake window (0|1), the gate's PTTL}.
local first = redis.call('GET', KEYS[1])
if first then return {0, first} end
redis.call('XADD', KEYS[2], ARGV[4], '~', ARGV[5], '*', ARGV[7], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[6] == '0' then return {1, 0, 0} end
local opened = redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[6])
return {1, opened and 1 or 0, redis.call('PTTL', KEYS[3])}
