-- Fenced write: only the holder of the current generation may write a kernel's hash, and the
-- values it shares with its browser session's other tabs go in with the same check. A writer
-- whose manifest covers fields written before (ARGV[3] = '1') needs them still there; one that
-- starts from nothing (a miss, a fresh start) creates the hash, or replaces every value in it:
-- its manifest signs only its own fields, and any other would make the next read bail out.
-- KEYS[1] the kernel's hash; KEYS[2], only when there are shared values to write or delete, the
-- browser session's shared hash (same hash tag, same slot).
-- ARGV[1] the new meta value: tag digest (4) .. key id (4) .. counter (4) .. manifest MAC (16)
-- .. generation (ASCII decimal), as base.Meta packs it; ARGV[2] TTL in ms; ARGV[3] '1' if the
-- hash must exist, else '0'; ARGV[4] n kernel fields.
-- With one key: n field/value pairs for KEYS[1], then the fields to delete from it.
-- With two keys: ARGV[5] m shared fields, ARGV[6] r kernel fields to delete, ARGV[7] the stamp of
-- the shared deletions; then n pairs for KEYS[1], m pairs for KEYS[2], r fields to delete from
-- KEYS[1] and the rest to delete from KEYS[2].
-- A shared value starts with its change stamp (16 ASCII digits, microseconds since the epoch).
-- Each field keeps the latest change (last write wins per key, by when the user made it, not when
-- the write lands); the shared meta field '\0' holds the stamp of the last forget, and older
-- changes are dropped.
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
  if ARGV[3] == '0' or string.sub(stored, 1, 4) ~= string.sub(meta, 1, 4) then
    -- Starting from nothing (a fresh start left a newer version's values for newer instances),
    -- or the schema changed: values this write's manifest does not sign must not be restored.
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.byte(field, 1) ~= 0 then redis.call('HDEL', key, field) end
    end
  end
end
redis.call('HSET', key, '\0', meta)
local n = tonumber(ARGV[4])
local at = #KEYS == 2 and 8 or 5
for i = at, at + 2 * n - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
at = at + 2 * n
if #KEYS == 1 then
  for i = at, #ARGV do
    redis.call('HDEL', key, ARGV[i])
  end
  redis.call('PEXPIRE', key, ARGV[2])
  return 1
end

local m, r = tonumber(ARGV[5]), tonumber(ARGV[6])
local shared = KEYS[2]
local forgotten = tonumber(redis.call('HGET', shared, '\0') or '-1')
local function newest(field, stamp)
  if stamp <= forgotten then return false end
  local current = redis.call('HGET', shared, field)
  return not current or tonumber(string.sub(current, 1, 16)) <= stamp
end
local touched = false
for i = at, at + 2 * m - 1, 2 do
  if newest(ARGV[i], tonumber(string.sub(ARGV[i + 1], 1, 16))) then
    redis.call('HSET', shared, ARGV[i], ARGV[i + 1])
    touched = true
  end
end
at = at + 2 * m
for i = at, at + r - 1 do
  redis.call('HDEL', key, ARGV[i])
end
local stamp = tonumber(ARGV[7])
for i = at + r, #ARGV do
  if newest(ARGV[i], stamp) then
    redis.call('HDEL', shared, ARGV[i])
  end
end
redis.call('PEXPIRE', key, ARGV[2])
if touched then
  redis.call('PEXPIRE', shared, ARGV[2])
end
return 1
