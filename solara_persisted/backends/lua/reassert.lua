-- A reconnect reached a live kernel: hold its session again as that newer connection, unless
-- someone holds it since with newer values. The kernel shows what it last read or wrote, plus
-- the changes since (still to write), so a takeover that read that state and wrote nothing loses
-- to it; a later connection, or a holder that wrote, wins.
-- KEYS[1] the kernel's hash. ARGV[1] the manifest the kernel last read or wrote (the meta
-- field's first 28 bytes); ARGV[2] the generation it holds; ARGV[3] when the reconnect was
-- opened (milliseconds since the epoch); ARGV[4] TTL in ms; ARGV[5] schema tag digest (4 bytes)
-- for a claim.
-- The meta field '\0' is tag digest (4) .. key id (4) .. counter (4) .. manifest MAC (16) ..
-- generation (ASCII decimal), as base.Meta packs it; a claim has counter 0 and an all-zero MAC.
-- Reply: {outcome, generation}. 'held': the values are kept and the generation bumped to at
-- least ARGV[3]; 'claimed': nothing (or another holder's bare claim) was there, a claim is left
-- and the kernel writes every value again; 'later' (a connection opened over 50 ms after the
-- reconnect holds it) and 'written' (another holder wrote since) change nothing and carry the
-- stored generation (0 when it is unreadable).
local opened = tonumber(ARGV[3])
local SLACK = 50  -- base.CONNECTION_SLACK

local function claim(generation)
  -- The meta first: refused at maxmemory, it fails the claim before anything is dropped.
  redis.call('HSET', KEYS[1], '\0', ARGV[5] .. string.rep('\0', 24) .. generation)
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.byte(field, 1) ~= 0 then redis.call('HDEL', KEYS[1], field) end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'claimed', generation}
end

local meta = redis.call('HGET', KEYS[1], '\0')
if not meta then
  return claim(string.format('%d', math.max(tonumber(ARGV[2]) + 1, opened)))
end
local digits = string.sub(meta, 29)
if #meta < 29 or #digits > 18 or not string.match(digits, '^%d+$') then
  return {'written', 0}
end
local stored = tonumber(digits)
if digits ~= ARGV[2] and stored > opened + SLACK then
  return {'later', digits}
end
local generation = string.format('%d', math.max(stored + 1, opened))
if digits == ARGV[2] or string.sub(meta, 1, 28) == ARGV[1] then
  redis.call('HSET', KEYS[1], '\0', string.sub(meta, 1, 28) .. generation)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'held', generation}
end
if string.sub(meta, 9, 28) == string.rep('\0', 20) and redis.call('HLEN', KEYS[1]) == 1 then
  return claim(generation)
end
return {'written', digits}
