-- The lease of exclusive services (kamikaze/lease.py, docs/ha.rst): of all
-- exclusive services on a queue, the one that holds it calls its consumer.
-- KEYS[1] the queue (its channel), KEYS[2] the lease ("TERM OWNER", expiring),
-- KEYS[3] the term counter (only grows). ARGV[1] 'acquire', 'renew',
-- 'release' or 'look' (changes nothing); ARGV[2] the service's owner id; ARGV[3] the lease's length in
-- ms; ARGV[4] for acquire, the highest term the service has seen (a new term
-- is above it, even if the counter was lost with Redis' data), else the
-- service's own term.
-- Returns {1 if the service holds the lease now, the holder's term (0:
-- none), the lease's remaining ms, the holder's owner id ('' when none)}.
local queue, lease, terms = KEYS[1], KEYS[2], KEYS[3]
local op, owner, length, term = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
-- Someone else's data under our names is refused, never overwritten.
for _, key in ipairs({lease, terms}) do
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is not a string (it is a ' .. kind
      .. '); nothing was changed')
  end
end
local held = redis.call('GET', lease)
local held_term, held_owner = 0, ''
if held then
  local space = string.find(held, ' ', 1, true)
  held_term = space and tonumber(string.sub(held, 1, space - 1))
  if not held_term or redis.call('PTTL', lease) < 0 then
    return redis.error_reply('the lease ' .. lease .. ' is not ours (not "TERM OWNER" with an '
      .. 'expiry): delete it to let a service take it; nothing was changed')
  end
  held_owner = string.sub(held, space + 1)
end
if redis.call('GET', terms) and not tonumber(redis.call('GET', terms)) then
  return redis.error_reply('the term counter ' .. terms .. ' is not a number: nothing was changed')
end
local mine = held and held_owner == owner and (op == 'acquire' or held_term == term)
if op == 'release' then
  if mine then
    redis.call('DEL', lease)
    -- Standbys wait for this to take over at once, not at the lease's end.
    redis.call(SIGNAL_COMMAND, queue, 'kamikaze-lease released ' .. held_term)
    return {0, 0, 0, ''}
  end
  return {0, held_term, redis.call('PTTL', lease), held_owner}
end
if mine then
  redis.call('PEXPIRE', lease, length)
  return {1, held_term, length, owner}
end
if held then return {0, held_term, redis.call('PTTL', lease), held_owner} end
if op ~= 'acquire' then return {0, 0, 0, ''} end  -- renew: it expired, this service is not active
local new_term = redis.call('INCR', terms)
if new_term <= term then
  new_term = term + 1
  redis.call('SET', terms, new_term)
end
redis.call('SET', lease, new_term .. ' ' .. owner, 'PX', length)
redis.call(SIGNAL_COMMAND, queue, 'kamikaze-lease active ' .. new_term .. ' ' .. owner)
return {1, new_term, length, owner}
