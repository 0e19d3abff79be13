-- Fenced write: only the holder of the current generation may write a session's hash. A writer
-- whose manifest covers fields written before (ARGV[3] = '1') needs them still there; one that
-- starts from nothing creates the hash.
-- KEYS[1] the session's hash; ARGV[1] the new meta value: tag digest (4) .. key id (4) ..
-- counter (4) .. manifest MAC (16) .. generation (ASCII decimal), as base.Meta packs it;
-- ARGV[2] TTL in ms; ARGV[3] '1' if the hash must exist, else '0'; ARGV[4] n, then n
-- field/value pairs, then the fields to delete.
-- Reply: 1 written, 0 fenced out (nothing written).
local key = KEYS[1]
local meta = ARGV[1]
local stored = redis.call('HGET', key, '\0')
if not stored and ARGV[3] == '1' then
  return 0  -- deleted or expired since: this writer's view of the hash is gone with it
end
if stored then
  if string.sub(stored, 29) ~= string.sub(meta, 29) then
    return 0
  end
  if string.sub(stored, 1, 4) ~= string.sub(meta, 1, 4) then
    -- The schema changed: values written under the old tag must not be restored under the new one.
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.byte(field, 1) ~= 0 then redis.call('HDEL', key, field) end
    end
  end
end
redis.call('HSET', key, '\0', meta)
local last = 4 + 2 * tonumber(ARGV[4])
for i = 5, last, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
for i = last + 1, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
redis.call('PEXPIRE', key, ARGV[2])
return 1
