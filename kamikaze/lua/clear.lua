-- Deletes the queue and its two indexes together, and signals the change if
-- the queue held anything. KEYS[4] is the call key: a call sent twice is
-- applied once (a repeat must not delete what was pushed after the first).
-- Others' in-flight call keys ({key}:call:*) are left to expire: they keep
-- a retried write of theirs from being applied twice.
-- Returns how many members the queue held.
local queue, index, payloads = KEYS[1], KEYS[2], KEYS[3]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local recalled = recall()
if recalled then return tonumber(recalled) end
local count = redis.call('ZCARD', queue)
-- UNLINK: a large queue is freed in the background, not while Redis waits.
redis.call('UNLINK', queue, index, payloads)
remember(tostring(count))
if count > 0 then signal_change(queue) end
return count
