-- One bounded step of removing every package with an exact payload, found
-- through the payload index. ARGV[1] is the call token: a step sent twice is
-- applied once. ARGV[2] the exact payload, ARGV[3] the index entry the last
-- step ended at ('' for the first step, which also removes the payload's
-- package that never expires), ARGV[4] most entries to look at. Going on
-- after an entry, not after a count, keeps the walk right while others
-- remove entries before it.
-- Returns {entries looked at, packages removed, 1 if the queue holds members
-- the index does not know of yet (0.1.x's: the caller walks the queue too),
-- the last entry looked at}; signals the change if any was removed. Told in
-- the same call as the step: a reconcile pass indexing a member after this
-- step missed it would make sizes read later agree.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local token = ARGV[1]
local recalled = recall(token)
if recalled then
  local parts, from = {}, 1
  for _ = 1, 3 do
    local space = string.find(recalled, ' ', from, true)
    parts[#parts + 1] = tonumber(string.sub(recalled, from, space - 1))
    from = space + 1
  end
  parts[4] = string.sub(recalled, from)
  return parts
end
local payload = ARGV[2]
local prefix = 'd' .. digest(payload)
local removed = 0
local from = '[' .. prefix
if ARGV[3] ~= '' then
  from = '(' .. ARGV[3]
else
  removed = removed + delete_member(queue, index, join_member('', payload))
end
-- Expire texts are ASCII: every entry of this digest sorts before prefix .. '\255'.
local entries = redis.call('ZRANGEBYLEX', index, from, '(' .. prefix .. '\255', 'LIMIT', 0, ARGV[4])
for _, entry in ipairs(entries) do
  local member = join_member(string.sub(entry, #prefix + 1), payload)
  if redis.call('ZSCORE', queue, member) then
    removed = removed + delete_member(queue, index, member)
  else
    -- Its member is gone (0.1.x removed it): the entry goes too. (Were it
    -- another payload's of the same digest, 1 in 2^64, that member would be
    -- unindexed: found by the walk, and indexed again by the reconcile pass.)
    redis.call('ZREM', index, entry)
  end
end
local last = entries[#entries] or ''
local unindexed = redis.call('ZCARD', queue) > redis.call('ZCARD', index) and 1 or 0
remember(token, #entries .. ' ' .. removed .. ' ' .. unindexed .. ' ' .. last)
if removed > 0 then signal_change(KEYS) end
return {#entries, removed, unindexed, last}
