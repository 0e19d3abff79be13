-- Fenced delete: drop a session's hash only while ARGV[1] is still its generation, which is what
-- follows the 28-byte manifest in the meta field '\0' (see base.Meta).
-- KEYS[1] the session's hash. Reply: 1 deleted, 0 not (missing, or taken over since).
local meta = redis.call('HGET', KEYS[1], '\0')
if meta and string.sub(meta, 29) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
