-- One bounded step of a pass that keeps the payload index true to the
-- queue, for data written without it: by 0.1.x's push and remove, or by
-- versions of ours before 1.0 (their indexes, KEYS[6] and KEYS[7], are
-- deleted once the queue is indexed).
-- ARGV[1] 'queue' or 'index' (the set this pass walks), ARGV[2] ZSCAN
-- cursor, ARGV[3] ZSCAN COUNT.
-- Walking the queue: index each unindexed member (the sweep deletes it if it
-- has expired), and rewrite each member whose expire text an earlier version
-- of ours wrote in a form 0.1.x cannot remove (needs_migration) as the same
-- package with the shortest text of the same time: no signal, since the top
-- is as it was. Walking the index: drop entries whose member is gone; an
-- entry of a package that expires says only its payload's digest, so it is
-- dropped an hour after its expire time, when the sweep has long deleted
-- the package had it still been there.
-- Returns {next cursor, entries changed}.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local GRACE = 3600
local walked = ({queue = queue, index = index})[ARGV[1]]
local scan = redis.call('ZSCAN', walked, ARGV[2], 'COUNT', ARGV[3])
local entries = scan[2]
local changed = 0
local _, _, now = server_clock()
for i = 1, #entries, 2 do
  local entry = entries[i]
  if walked == queue then
    local text, payload = split_member(entry)
    local expire_time = text and parse_expiry(text)
    if expire_time and needs_migration(text) then
      local score = redis.call('ZSCORE', queue, entry)
      delete_member(queue, index, entry)
      local member = join_member(shortest_text(expire_time), payload)
      redis.call('ZADD', queue, score, member)
      index_member(index, member)
      changed = changed + 1
    elseif not redis.call('ZSCORE', index, index_entry(entry)) then
      index_member(index, entry)
      changed = changed + 1
    end
  else
    local kind, rest = string.sub(entry, 1, 1), string.sub(entry, 2)
    local gone
    if kind == 'x' then
      gone = not redis.call('ZSCORE', queue, rest)
    elseif kind == 'n' then
      gone = not redis.call('ZSCORE', queue, join_member('', rest))
    else
      local expire_time = parse_expiry(string.sub(rest, 9))
      gone = kind ~= 'd' or not expire_time or expire_time < now - GRACE
    end
    if gone then
      redis.call('ZREM', index, entry)
      changed = changed + 1
    end
  end
end
if walked == queue and scan[1] == '0' and redis.call('ZCARD', queue) == redis.call('ZCARD', index) then
  redis.call('UNLINK', KEYS[6], KEYS[7])  -- the indexes of versions before 1.0
end
return {scan[1], changed}
