-- Deletes the queue and its payload index together (and the indexes of
-- versions before 1.0: KEYS[6] and KEYS[7]), and signals the change if the
-- queue held anything. ARGV[1] is the call token: a call sent twice is
-- applied once (a repeat must not delete what was pushed after the first).
-- The change counter and the call outcomes stay: they keep followers and
-- retried writes right.
-- Returns how many members the queue held.
local queue, index = KEYS[1], KEYS[2]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local token = ARGV[1]
local recalled = recall(token)
if recalled then return tonumber(recalled) end
local count = redis.call('ZCARD', queue)
-- UNLINK: a large queue is freed in the background, not while Redis waits.
redis.call('UNLINK', queue, index, KEYS[6], KEYS[7])
remember(token, tostring(count))
if count > 0 then signal_change(KEYS) end
return count
