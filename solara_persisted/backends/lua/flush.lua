-- Fenced writes of one or more sessions, each checked and written on its own: only the holder of
-- the current generation may write a kernel's hash, and the values it shares with its browser
-- session's other tabs go in with the same check. A writer whose manifest covers fields written
-- before (must-exist '1') needs them still there; one that starts from nothing (a miss, a fresh
-- start) creates the hash, or replaces every value in it: its manifest signs only its own fields,
-- and any other would make the next read bail out.
-- Many sessions in one call spare the server and the client a command each; on a Cluster every
-- session is its own slot, so a call there carries one.
-- KEYS, per session in order: the kernel's hash; then, only when there are shared values to write
-- or delete, the browser session's shared hash (same hash tag, same slot).
-- ARGV[1] the number of sessions. Then per session: its head, the new meta value, and its body.
--   The head is ASCII decimals separated by spaces (one argument, not eight: each argument costs
--   the client an encoding on the hot path): the key count (1 or 2), the number c of arguments
--   after the head, the TTL in ms, 1 if the hash must exist (else 0), n kernel fields; with two
--   keys also m shared fields, r kernel fields to delete, and the stamp of the shared deletions.
--   The meta value: tag digest (4) .. key id (4) .. counter (4) .. manifest MAC (16) ..
--   generation (ASCII decimal), as base.Meta packs it.
--   The body with one key: n field/value pairs for the kernel's hash, then the fields to delete
--   from it. With two keys: n pairs for the kernel's hash, m pairs for the shared hash, r fields
--   to delete from the kernel's hash and the rest to delete from the shared hash.
-- A shared value starts with its change stamp (16 ASCII digits, microseconds since the epoch).
-- Each field keeps the latest change (last write wins per key, by when the user made it, not when
-- the write lands); the shared meta field '\0' holds the stamp of the last forget, and older
-- changes are dropped.
-- Reply: one entry per session, in order: 1 written, 0 fenced out (nothing of it written), or
-- the error that stopped it (a wrong key type), which the other sessions do not share.

-- One session: its hashes, its head's numbers h, its meta ARGV[a] and body ARGV[a + 1] .. ARGV[last].
local function flush(key, shared, h, a, last)
  local meta = ARGV[a]
  local must_exist = h[4]
  local stored = redis.call('HGET', key, '\0')
  if not stored and must_exist == 1 then
    return 0  -- deleted or expired since: this writer's view of the hash is gone with it
  end
  if stored then
    if string.sub(stored, 29) ~= string.sub(meta, 29) then
      return 0
    end
    if must_exist == 0 or string.sub(stored, 1, 4) ~= string.sub(meta, 1, 4) then
      -- Starting from nothing (a fresh start left a newer version's values for newer instances),
      -- or the schema changed: values this write's manifest does not sign must not be restored.
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if string.byte(field, 1) ~= 0 then redis.call('HDEL', key, field) end
      end
    end
  end
  redis.call('HSET', key, '\0', meta)
  local ttl, n = h[3], h[5]
  local at = a + 1
  for i = at, at + 2 * n - 1, 2 do
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
  at = at + 2 * n
  if not shared then
    for i = at, last do
      redis.call('HDEL', key, ARGV[i])
    end
    redis.call('PEXPIRE', key, ttl)
    return 1
  end

  local m, r = h[6], h[7]
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
  local stamp = h[8]
  for i = at + r, last do
    if newest(ARGV[i], stamp) then
      redis.call('HDEL', shared, ARGV[i])
    end
  end
  redis.call('PEXPIRE', key, ttl)
  if touched then
    redis.call('PEXPIRE', shared, ttl)
  end
  return 1
end

local replies = {}
local k, a = 1, 2
for s = 1, tonumber(ARGV[1]) do
  local h = {}
  for number in string.gmatch(ARGV[a], '%d+') do h[#h + 1] = tonumber(number) end
  local shared = false
  if h[1] == 2 then shared = KEYS[k + 1] end
  local ok, reply = pcall(flush, KEYS[k], shared, h, a + 1, a + h[2])
  if not ok and type(reply) ~= 'table' then reply = redis.error_reply(tostring(reply)) end
  replies[s] = reply  -- an error fails its own session only
  k, a = k + h[1], a + 1 + h[2]
end
return replies
