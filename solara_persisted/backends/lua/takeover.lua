-- Take a session's state over: check the schema tag and the budget, bump the generation, read;
-- and read the state its browser session shares across tabs.
-- KEYS[1] the kernel's hash (prefix .. session address); KEYS[2] the browser session's shared
-- hash (prefix .. the address's '{S}' part: same hash tag, same Cluster slot).
-- ARGV[1] schema tag digest (4 bytes); ARGV[2] TTL in ms; ARGV[3] max persisted keys (0: none);
-- ARGV[4] max envelope bytes (0: none); ARGV[5] '1' to read KEYS[2], else '0'; ARGV[6] the
-- generation to claim a miss with (ASCII decimal; '0' claims nothing); ARGV[7] when the
-- connection taking over was opened (milliseconds since the epoch; '0': no ordering).
-- Generations follow connections: a takeover's generation is at least its connection's opening
-- time, and a connection opened over SLACK ms before the one that holds the session gets
-- {'stale', 0} and changes nothing (an instance that was paused processes an old connection's
-- first message).
-- The meta field '\0' is tag digest (4) .. key id (4) .. counter (4) .. manifest MAC (16) ..
-- generation (ASCII decimal), as base.Meta packs it; only the generation is touched here. A claim
-- is a meta field with counter 0 and an all-zero MAC and no values: a session taken over before
-- its first write. It fences the previous holder like any other takeover and reads as a miss.
-- Reply: {kernel, shared, pttl}. pttl is the kernel hash's TTL left before this takeover
-- refreshed it (ms; -2 when there is none or it is a claim), which tells how long ago it was last
-- written. kernel is {reason, generation, stored meta, ...}: 'miss' (generation 0 when no claim
-- was asked for or it could not be written, e.g. at maxmemory) and 'corrupt' carry nothing more;
-- 'over-budget' adds {'keys' or 'bytes', amount}; 'restored' adds field, value, ...  shared is {}
-- (not asked, or nothing stored), {'over-budget', 'keys' or 'bytes', amount} or
-- {'ok', field, value, ...}; its '\0' field (a forget stamp) is never sent.
local max_keys, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])

-- The budget is checked before anything is read, so an oversized session costs a bail-out,
-- not a stall of every other client while its values are copied. nil when within it.
local function over_budget(key)
  local count = redis.call('HLEN', key) - 1
  if max_keys > 0 and count > max_keys then
    return {'keys', count}
  end
  if max_bytes > 0 then
    -- MEMORY USAGE (one C call, no value copied) bounds the values' bytes from above: a session
    -- under the budget by it needs no exact count. Servers that refuse it in scripts get the count.
    local usage = redis.pcall('MEMORY', 'USAGE', key, 'SAMPLES', '0')
    if not (type(usage) == 'number' and usage <= max_bytes) then
      local total = 0
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if string.byte(field, 1) ~= 0 then
          total = total + redis.call('HSTRLEN', key, field)  -- a length, never the value
        end
      end
      if total > max_bytes then
        return {'bytes', total}
      end
    end
  end
  return nil
end

local function append_fields(reply, key)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.byte(all[i], 1) ~= 0 then
      reply[#reply + 1] = all[i]
      reply[#reply + 1] = all[i + 1]
    end
  end
  return reply
end

local pttl = redis.call('PTTL', KEYS[1])

local UNWRITTEN = string.rep('\0', 20)  -- a claim's counter and MAC
local SLACK = 50  -- base.CONNECTION_SLACK

-- Claim a session nothing was written for, so that a holder paused before its first write is
-- fenced out when it wakes. At maxmemory the claim fails and the miss claims nothing.
local function claim(key, generation)
  local meta = ARGV[1] .. string.rep('\0', 4) .. UNWRITTEN .. generation
  local ok = redis.pcall('HSET', key, '\0', meta)
  if type(ok) == 'table' and ok.err then
    return {'miss', 0}
  end
  redis.call('PEXPIRE', key, ARGV[2])
  return {'miss', generation}
end

local function kernel(key)
  local meta = redis.call('HGET', key, '\0')
  if not meta then
    return ARGV[6] == '0' and {'miss', 0} or claim(key, ARGV[6])
  end
  local stored = string.sub(meta, 29)
  if #meta < 29 or #stored > 18 or not string.match(stored, '^%d+$') then
    return {'corrupt', 0}
  end
  local opened = tonumber(ARGV[7])
  if opened > 0 and tonumber(stored) > opened + SLACK then
    return {'stale', 0}
  end
  local generation = math.max(tonumber(stored) + 1, opened)
  if string.sub(meta, 9, 28) == UNWRITTEN and redis.call('HLEN', key) == 1 then
    return claim(key, string.format('%d', generation))  -- claimed, never written: still a miss
  end
  redis.call('HSET', key, '\0', string.sub(meta, 1, 28) .. string.format('%d', generation))
  redis.call('PEXPIRE', key, ARGV[2])
  if string.sub(meta, 1, 4) ~= ARGV[1] then
    -- Keep the data: an instance still on the old tag must not destroy what newer ones wrote.
    return {'schema-reset', generation, meta}
  end
  local over = over_budget(key)
  if over then
    return {'over-budget', generation, meta, over[1], over[2]}
  end
  return append_fields({'restored', generation, meta}, key)
end

local function shared(key)
  if ARGV[5] ~= '1' or redis.call('EXISTS', key) == 0 then
    return {}
  end
  redis.call('PEXPIRE', key, ARGV[2])  -- a new tab or a reload is activity of the whole session
  local over = over_budget(key)
  if over then
    return {'over-budget', over[1], over[2]}
  end
  return append_fields({'ok'}, key)
end

local taken = kernel(KEYS[1])
if taken[1] == 'miss' then
  pttl = -2  -- a claim holds nothing written, so it tells nothing about when
end
return {taken, shared(KEYS[2]), pttl}
