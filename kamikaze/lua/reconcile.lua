-- One bounded step of a pass that keeps the expiry index true to the queue,
-- for data written without it (0.1.x's push and remove).
-- KEYS[1] queue, KEYS[2] expiry index; ARGV[1] 'queue' or 'index' (the set
-- this pass walks), ARGV[2] ZSCAN cursor, ARGV[3] ZSCAN COUNT.
-- Walking the queue: index each unindexed member (the sweep then deletes it
-- if it has expired).
-- Walking the index: drop entries whose member is no longer in the queue.
-- Returns {next cursor, entries changed}.
local queue, index = KEYS[1], KEYS[2]
local walked = ARGV[1] == 'queue' and queue or index
local scan = redis.call('ZSCAN', walked, ARGV[2], 'COUNT', ARGV[3])
local entries = scan[2]
local changed = 0
for i = 1, #entries, 2 do
  local member = entries[i]
  if walked == queue then
    if not redis.call('ZSCORE', index, member) then
      local expire_text = split_member(member)
      local expire_time = expire_text and parse_expiry(expire_text)
      redis.call('ZADD', index, index_score(expire_time), member)
      changed = changed + 1
    end
  elseif not redis.call('ZSCORE', queue, member) then
    redis.call('ZREM', index, member)
    changed = changed + 1
  end
end
return {scan[1], changed}
