-- One bounded step of the sweep: walks the queue in order from just past
-- (ARGV[1] score, ARGV[2] member), the last entry the step before kept ('' and
-- '' to start at the top), and deletes the expired packages it finds, at most
-- ARGV[3] entries looked at. Among equal priorities members are in expiry
-- order (their bytes: docs/data.rst), so once a package of a priority expires
-- more than a second from now (or never), the rest of that priority is
-- skipped with one ZCOUNT: a pass costs about one step per priority in use,
-- not one per package. Going on after an entry, not after a rank, keeps the
-- walk right while others push and remove.
-- Returns {entries looked at, packages deleted, 1 if the walk goes on,
-- the score and member to go on after}; signals the change if any was deleted.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local MARGIN = 1  -- second: 0.1.x's shorter expire texts sort within a second of their order
local budget = tonumber(ARGV[3])
local rank = 0
if ARGV[1] ~= '' then rank = rank_after(queue, ARGV[1], ARGV[2]) end
local _, _, now = server_clock()
local looked, deleted = 0, 0
local last_score, last_member = ARGV[1], ARGV[2]
local more = 1
while looked < budget and more == 1 do
  local chunk = redis.call('ZRANGE', queue, rank, rank + 99, 'WITHSCORES')
  if #chunk == 0 then more = 0 end
  local skipping = nil  -- the priority whose rest cannot have expired
  for i = 1, #chunk, 2 do
    local member, score = chunk[i], chunk[i + 1]
    looked = looked + 1
    if skipping ~= score then
      skipping = nil
      local text = split_member(member)
      local expire_time = text and parse_expiry(text)
      if expire_time and expire_time <= now then
        deleted = deleted + delete_member(queue, index, member)  -- the next one moves up
        rank = rank - 1
      elseif expire_time == false or (expire_time and expire_time > now + MARGIN) then
        skipping = score
      end
    end
    rank = rank + 1
    last_score, last_member = score, member
    if looked >= budget then break end
  end
  if skipping then  -- that priority may go on past the chunk: skip the rest with one ZCOUNT
    local past = redis.call('ZCOUNT', queue, '-inf', skipping)
    if past > rank then
      local run_end = redis.call('ZRANGE', queue, past - 1, past - 1, 'WITHSCORES')
      last_member, last_score, rank = run_end[1], run_end[2], past
    end
  end
end
if deleted > 0 then signal_change(KEYS) end
return {looked, deleted, more, last_score, last_member}
