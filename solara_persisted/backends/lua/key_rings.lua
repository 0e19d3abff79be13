-- Fleet key-ring check: record this instance's key-ring fingerprint and read every live one.
-- KEYS[1] the fleet hash (field: instance id, value: '<fingerprint> <unix seconds>').
-- ARGV[1] instance id, ARGV[2] fingerprint, ARGV[3] now (unix seconds), ARGV[4] max age (s),
-- ARGV[5] TTL of the whole hash (ms). Entries older than max age are instances that went away.
-- Reply: {instance, fingerprint, ...} of the live entries, ours included.
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
local entries = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #entries, 2 do
  local fingerprint, seen = string.match(entries[i + 1], '^(%S+) (%S+)$')
  if fingerprint and tonumber(seen) >= now - tonumber(ARGV[4]) then
    live[#live + 1] = entries[i]
    live[#live + 1] = fingerprint
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return live
