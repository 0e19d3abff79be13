-- Fenced write: only the holder of the current generation may write a kernel's hash.
-- KEYS[1] the kernel's hash; ARGV[1] the new meta value: identity (20 bytes) .. schema tag
-- digest (4) .. generation (ASCII decimal), as base.Meta packs it; ARGV[2] TTL in ms;
-- ARGV[3] n, then n field/value pairs, then the fields to delete.
-- Reply: 1 written, 0 fenced out (nothing written).
local key = KEYS[1]
local meta = ARGV[1]
local stored = redis.call('HGET', key, '\0')
if stored then
  if string.sub(stored, 25) ~= string.sub(meta, 25) then
    return 0
  end
  if string.sub(stored, 21, 24) ~= string.sub(meta, 21, 24) then
    -- The schema changed: values written under the old tag must not be restored under the new one.
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.byte(field, 1) ~= 0 then redis.call('HDEL', key, field) end
    end
  end
end
redis.call('HSET', key, '\0', meta)
local last = 3 + 2 * tonumber(ARGV[3])
for i = 4, last, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
for i = last + 1, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
redis.call('PEXPIRE', key, ARGV[2])
return 1
