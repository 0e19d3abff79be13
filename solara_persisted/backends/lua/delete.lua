-- Fenced delete: drop a kernel's hash only while ARGV[1] is still its generation, which is what
-- follows identity (20 bytes) and tag digest (4) in the meta field '\0' (see base.Meta).
-- KEYS[1] the kernel's hash. Reply: 1 deleted, 0 not (missing, or taken over since).
local meta = redis.call('HGET', KEYS[1], '\0')
if meta and string.sub(meta, 25) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
