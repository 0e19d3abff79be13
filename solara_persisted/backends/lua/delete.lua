-- Fenced delete: drop a kernel's hash only while ARGV[1] is still its generation.
-- KEYS[1] the kernel's hash. Reply: 1 deleted, 0 not (missing, or taken over since).
if redis.call('HGET', KEYS[1], '\0g') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
