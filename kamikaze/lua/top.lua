-- Finds the live top (lowest score), deleting expired packages above it.
-- ARGV[1], ARGV[2]: the score and member of the last entry an earlier call
-- skipped (others' data), or '' and '' to start at the top; ARGV[3] most
-- entries to look at in this call.
-- Returns {seconds, microseconds, removed, skipped members, more, change
-- number, member, score}: `more` is 1 when the bound was reached before a
-- verdict (call again after the last skipped member); the change number is the
-- queue's counter once this call's own change is counted (what a follower's
-- next signal goes on from); member and score are absent for an empty queue.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local rank = 0
if ARGV[1] ~= '' then rank = rank_after(queue, ARGV[1], ARGV[2]) end
local budget = tonumber(ARGV[3])
local sec, usec, now = server_clock()
local removed, skipped = 0, {}
local result = function(more, member, score)
  local seq = removed > 0 and signal_change(KEYS) or tonumber(redis.call('GET', KEYS[3]) or '0')
  return {sec, usec, removed, skipped, more, seq, member, score}
end
while budget > 0 do
  local chunk = redis.call('ZRANGE', queue, rank, rank + 15, 'WITHSCORES')
  if #chunk == 0 then return result(0) end
  for i = 1, #chunk, 2 do
    local member = chunk[i]
    local text = split_member(member)
    local expire_time = text and parse_expiry(text)
    budget = budget - 1
    if expire_time == nil then
      skipped[#skipped + 1] = member
      skipped[#skipped + 1] = chunk[i + 1]
      rank = rank + 1
    elseif expire_time and expire_time <= now then
      delete_member(queue, index, member)
      removed = removed + 1
    else
      return result(0, member, chunk[i + 1])
    end
    if budget == 0 then break end
  end
end
return result(1)
