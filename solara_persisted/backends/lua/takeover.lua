-- Take a kernel's state over: verify the identity, check the schema tag, bump the generation.
-- KEYS[1] the kernel's hash; ARGV[1] schema tag; ARGV[2] TTL in ms; ARGV[3..] accepted identities.
-- Reply: {reason, generation, identity-or-tag, field, value, field, value, ...}.
local key = KEYS[1]
local meta = redis.call('HMGET', key, '\0g', '\0i', '\0t')
if not meta[1] then
  return {'miss', 1}  -- nothing is written on a miss: the first flush creates the hash
end
local known = false
for i = 3, #ARGV do
  if meta[2] == ARGV[i] then known = true break end
end
if not known then
  return {'identity-mismatch', 0, meta[2]}
end
local generation = redis.call('HINCRBY', key, '\0g', 1)
redis.call('PEXPIRE', key, ARGV[2])
local tag = meta[3] or ''
if tag ~= ARGV[1] then
  -- Keep the data: an instance still on the old tag must not destroy what newer ones wrote.
  return {'schema-reset', generation, tag}
end
local reply = {'restored', generation, ''}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if string.byte(all[i], 1) ~= 0 then
    reply[#reply + 1] = all[i]
    reply[#reply + 1] = all[i + 1]
  end
end
return reply
