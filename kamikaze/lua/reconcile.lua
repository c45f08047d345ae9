-- One bounded step of a pass that keeps the indexes true to the queue, for
-- data written without them (0.1.x's push and remove).
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV[1]
-- 'queue', 'index' or 'payloads' (the set this pass walks), ARGV[2] ZSCAN
-- cursor, ARGV[3] ZSCAN COUNT.
-- Walking the queue: index each unindexed member (the sweep then deletes it
-- if it has expired). Walking an index: drop entries whose member is gone.
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
    if not redis.call('ZSCORE', index, entry) then
      local expire_text = split_member(entry)
      index_member(index, payloads, entry, expire_text and parse_expiry(expire_text))
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
