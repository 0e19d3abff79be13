-- Fenced write: only the holder of the current generation may write a kernel's hash.
-- KEYS[1] the kernel's hash; ARGV[1] generation; ARGV[2] identity; ARGV[3] schema tag;
-- ARGV[4] TTL in ms; ARGV[5] n, then n field/value pairs, then the fields to delete.
-- Reply: 1 written, 0 fenced out (nothing written).
local key = KEYS[1]
local stored = redis.call('HGET', key, '\0g')
if not stored then
  redis.call('HSET', key, '\0g', ARGV[1])
elseif stored ~= ARGV[1] then
  return 0
elseif redis.call('HGET', key, '\0t') ~= ARGV[3] then
  -- The schema changed: values written under the old tag must not be restored under the new one.
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.byte(field, 1) ~= 0 then redis.call('HDEL', key, field) end
  end
end
redis.call('HSET', key, '\0i', ARGV[2], '\0t', ARGV[3])
local last = 5 + 2 * tonumber(ARGV[5])
for i = 6, last, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
for i = last + 1, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
redis.call('PEXPIRE', key, ARGV[4])
return 1
