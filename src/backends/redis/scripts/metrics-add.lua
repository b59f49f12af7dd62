-- Adds each delta to its field of the metrics hash (HINCRBYFLOAT).
-- KEYS[1]  the metrics hash
-- ARGV     field, delta for each series (two per series)
-- Reply: the number of series updated.
for i = 1, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
