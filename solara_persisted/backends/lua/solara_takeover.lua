-- Take over a session that Solara's built-in engine (solara.state, 1.58 to 1.64) stored, for a
-- fleet switching to solara-persisted: check the session cookie, fence Solara's writer out, read.
-- KEYS[1] Solara's hash of one kernel: Solara's prefix .. kernel id (see solara_format).
-- ARGV[1] TTL cap in ms; ARGV[2] max data fields (0: none); ARGV[3] max data bytes (0: none);
-- ARGV[4], ... the HMAC of the session cookie under each key of our ring (32 raw bytes each).
-- Solara's meta fields are __generation__ (ASCII integer, its fencing token), __session_id__ (the
-- cookie's HMAC) and __version__ (schema tag); every other field is data ('reactive:<key>').
-- Reply: {} when there is no hash. Else field, value, ... :
--   the meta fields alone, untouched, when __session_id__ matches no ARGV[4..] (another browser's
--   session: a stranger presenting its kernel id must not fence its owner out) or __generation__
--   is not an integer Solara could compare;
--   otherwise __generation__ is bumped (HINCRBY: Solara's next flush from the old generation is
--   refused), the TTL capped at ARGV[1] (never extended: the hash is left to expire), and the
--   reply is the meta fields, the bumped generation included, plus every data field, or, over
--   the budget, the pseudo field '__over_budget__' = 'keys <n>' or 'bytes <n>' (nothing read).
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  return {}
end

local META = {'__generation__', '__session_id__', '__version__'}
local function meta_fields()
  local reply = {}
  for _, name in ipairs(META) do
    local value = redis.call('HGET', key, name)
    if value then
      reply[#reply + 1] = name
      reply[#reply + 1] = value
    end
  end
  return reply
end

local function is_meta(field)
  return string.sub(field, 1, 2) == '__'  -- Solara's own rule: '__*' is never data
end

local stored_session = redis.call('HGET', key, '__session_id__')
local owned = false
if stored_session then
  for i = 4, #ARGV do
    if stored_session == ARGV[i] then
      owned = true
      break
    end
  end
end
local generation = redis.call('HGET', key, '__generation__')
if not owned or not generation or #generation > 18 or not string.match(generation, '^%-?%d+$') then
  return meta_fields()
end

redis.call('HINCRBY', key, '__generation__', 1)
local cap = tonumber(ARGV[1])
local left = redis.call('PTTL', key)
if left < 0 or left > cap then
  redis.call('PEXPIRE', key, cap)
end

local max_keys, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local names = redis.call('HKEYS', key)  -- names only: the budget is checked before any value is read
local count, total = 0, 0
for _, field in ipairs(names) do
  if not is_meta(field) then
    count = count + 1
    total = total + redis.call('HSTRLEN', key, field)
  end
end
local reply = meta_fields()
if max_keys > 0 and count > max_keys then
  reply[#reply + 1] = '__over_budget__'
  reply[#reply + 1] = 'keys ' .. count
  return reply
end
if max_bytes > 0 and total > max_bytes then
  reply[#reply + 1] = '__over_budget__'
  reply[#reply + 1] = 'bytes ' .. total
  return reply
end
for _, field in ipairs(names) do
  if not is_meta(field) then
    reply[#reply + 1] = field
    reply[#reply + 1] = redis.call('HGET', key, field)
  end
end
return reply
