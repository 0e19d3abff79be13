-- Claim a session for a page that started without reading it (Redis was unreachable): fence out
-- every earlier holder and drop the stored values, which that page never showed, so that what
-- it writes from now on is the session's whole state.
-- KEYS[1] the kernel's hash. ARGV[1] schema tag digest (4 bytes); ARGV[2] TTL in ms; ARGV[3] the
-- generation to claim with when nothing (or nothing readable) is stored; ARGV[4] the key ids of
-- this instance's key ring, 4 bytes each; ARGV[5] when the page's connection was opened
-- (milliseconds since the epoch): a session held by a connection opened over 50 ms later
-- (base.CONNECTION_SLACK) is not claimed.
-- The meta field '\0' is tag digest (4) .. key id (4) .. counter (4) .. manifest MAC (16) ..
-- generation (ASCII decimal), as base.Meta packs it; a claim has counter 0 and an all-zero MAC.
-- Reply: the claimed generation; 0 when the state is signed with a key this ring lacks (left
-- untouched for the instances that hold it); -1 when a later connection holds the session.
local meta = redis.call('HGET', KEYS[1], '\0')
local generation = ARGV[3]
if meta then
  local stored = string.sub(meta, 29)
  if #meta >= 29 and #stored <= 18 and string.match(stored, '^%d+$') then
    local key_id = string.sub(meta, 5, 8)
    local claim = string.sub(meta, 9, 28) == string.rep('\0', 20)
    local ours = false
    for at = 1, #ARGV[4], 4 do
      if string.sub(ARGV[4], at, at + 3) == key_id then ours = true end
    end
    if not (claim or ours) then
      return 0
    end
    local opened = tonumber(ARGV[5])
    if tonumber(stored) > opened + 50 then  -- base.CONNECTION_SLACK
      return -1
    end
    generation = string.format('%d', math.max(tonumber(stored) + 1, opened))
  end
end
-- The meta first: refused at maxmemory, it fails the claim before anything is dropped.
redis.call('HSET', KEYS[1], '\0', ARGV[1] .. string.rep('\0', 24) .. generation)
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.byte(field, 1) ~= 0 then redis.call('HDEL', KEYS[1], field) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(generation)
