-- Forget a browser session's shared state (a logout): drop every value and keep only the stamp
-- of the forget, so a change made before it (a frozen instance, another tab's pending write)
-- is never written afterwards.
-- KEYS[1] the browser session's shared hash. ARGV[1] the stamp (16 ASCII digits, microseconds since the
-- epoch); ARGV[2] TTL in ms.
-- Reply: the number of values dropped.
local key = KEYS[1]
local previous = redis.call('HGET', key, '\0')
local dropped = redis.call('HLEN', key) - (previous and 1 or 0)
previous = tonumber(previous or '-1')
redis.call('DEL', key)
redis.call('HSET', key, '\0', string.format('%016d', math.max(previous, tonumber(ARGV[1]))))
redis.call('PEXPIRE', key, ARGV[2])
return dropped
