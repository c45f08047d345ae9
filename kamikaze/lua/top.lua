-- Finds the live top (lowest score), deleting expired packages above it.
-- KEYS[1] queue, KEYS[2] expiry index, KEYS[3] payload index; ARGV[1] rank to start at (members of others' data already
-- skipped), ARGV[2] most entries to look at in this call.
-- Returns {seconds, microseconds, removed, skipped members, more, member, score}:
-- `more` is 1 when the bound was reached before a verdict (call again from
-- rank ARGV[1] + #skipped); member and score are absent for an empty queue.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local rank = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local removed, skipped = 0, {}
local result = function(more, member, score)
  if removed > 0 then signal_change(queue) end
  return {t[1], t[2], removed, skipped, more, member, score}
end
while budget > 0 do
  local chunk = redis.call('ZRANGE', queue, rank, rank + 15, 'WITHSCORES')
  if #chunk == 0 then return result(0) end
  for i = 1, #chunk, 2 do
    local member = chunk[i]
    local expire_text = split_member(member)
    local expire_time = expire_text and parse_expiry(expire_text)
    budget = budget - 1
    if expire_time == nil then
      skipped[#skipped + 1] = member
      rank = rank + 1
    elseif expire_time and expire_time <= now then
      delete_member(queue, index, payloads, member)
      removed = removed + 1
    else
      return result(0, member, chunk[i + 1])
    end
  end
end
return result(1)
