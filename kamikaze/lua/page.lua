-- One page of the queue in order, for listings: the entries just past
-- (ARGV[1] score, ARGV[2] member), the last entry of the previous page ('' and
-- '' for the first page), at most ARGV[3] of them. Going on after an entry,
-- not after a rank, keeps a listing free of repeats and gaps while others
-- push and remove. Read-only.
-- Returns {seconds, microseconds, member, score, member, score, ...}.
local queue = KEYS[1]
local refusal = wrong_type(KEYS)
if refusal then return refusal end
local rank = 0
if ARGV[1] ~= '' then rank = rank_after(queue, ARGV[1], ARGV[2]) end
local sec, usec = server_clock()
local page = redis.call('ZRANGE', queue, rank, rank + tonumber(ARGV[3]) - 1, 'WITHSCORES')
table.insert(page, 1, usec)
table.insert(page, 1, sec)
return page
