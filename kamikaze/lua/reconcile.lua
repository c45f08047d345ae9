-- One bounded step of a pass that keeps the indexes true to the queue, for
-- data written without them (0.1.x's push and remove).
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV[1]
-- 'queue', 'index' or 'payloads' (the set this pass walks), ARGV[2] ZSCAN
-- cursor, ARGV[3] ZSCAN COUNT.
-- Walking the queue: index each unindexed member (the sweep then deletes it
-- if it has expired), and rewrite each member whose expire text an earlier
-- version of ours wrote in a form 0.1.x cannot remove (needs_migration) as
-- the same package with the shortest text of the same time: no signal, since
-- the top is as it was. Walking an index: drop entries whose member is gone.
-- Returns {next cursor, entries changed}.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local walked = ({queue = queue, index = index, payloads = payloads})[ARGV[1]]
local scan = redis.call('ZSCAN', walked, ARGV[2], 'COUNT', ARGV[3])
local entries = scan[2]
local changed = 0
for i = 1, #entries, 2 do
  local entry = entries[i]
  if walked == queue then
    local text, payload = split_member(entry)
    local expire_time = text and parse_expiry(text)
    if expire_time and needs_migration(text) then
      local score = redis.call('ZSCORE', queue, entry)
      delete_member(queue, index, payloads, entry)
      local member = join_member(shortest_text(expire_time), payload)
      redis.call('ZADD', queue, score, member)
      index_member(index, payloads, member, expire_time)
      changed = changed + 1
    elseif not redis.call('ZSCORE', index, entry) then
      index_member(index, payloads, entry, expire_time)
      changed = changed + 1
    end
  else
    local member = entry
    if walked == payloads then member = entry_member(entry) end
    if member == nil or not redis.call('ZSCORE', queue, member) then
      redis.call('ZREM', walked, entry)
      changed = changed + 1
    end
  end
end
return {scan[1], changed}
