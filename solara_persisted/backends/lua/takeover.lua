-- Take a kernel's state over: verify the identity, check the schema tag, bump the generation.
-- KEYS[1] the kernel's hash; ARGV[1] schema tag digest; ARGV[2] TTL in ms; ARGV[3..] accepted
-- identities. The meta field '\0' holds identity (20 bytes) .. tag digest (4) .. generation
-- (ASCII decimal), as base.Meta packs it.
-- Reply: {reason, generation, identity-or-tag-digest, field, value, field, value, ...}.
local key = KEYS[1]
local meta = redis.call('HGET', key, '\0')
if not meta then
  return {'miss', 1}  -- nothing is written on a miss: the first flush creates the hash
end
local identity = string.sub(meta, 1, 20)
local known = false
for i = 3, #ARGV do
  if identity == ARGV[i] then known = true break end
end
if not known then
  return {'identity-mismatch', 0, identity}
end
local tag = string.sub(meta, 21, 24)
local generation = tonumber(string.sub(meta, 25)) + 1
redis.call('HSET', key, '\0', identity .. tag .. string.format('%d', generation))
redis.call('PEXPIRE', key, ARGV[2])
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
