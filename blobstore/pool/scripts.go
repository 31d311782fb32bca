package pool

import "github.com/redis/go-redis/v9"

// The Redis pool's scripts. Each runs atomically in Redis, so a request
// is queued whole or not at all, a batch moves from the queue to
// processing whole, and only the lock's holder moves or finishes one.
//
// Keys (after the pool's prefix):
//
//	lock        the flusher's token, with a time to live
//	queue       entries "rid nops nbytes instance" of waiting requests
//	qops qbytes ops and data bytes waiting in queue (to ring at a cap)
//	bell        at most one element: something for the flusher to look at
//	proc        the entries of the batch being committed
//	batch       "id prev" of the batch being committed
//	op:<rid>    a waiting request's ops
//	res:<inst>  answers for an instance's requests, kept a minute
//	down        set while the store refuses commits: new requests get 503
//
// The entries' op and byte counts are what the caps need; they say no
// more about a request than its payload does, and live as long.

// enqueueScript queues a request. KEYS: queue qops qbytes bell payload
// down; ARGV: entry payload nops nbytes fullOps fullBytes (the counts that
// ring the bell). Returns the queue's length, or -1 while the store is
// down (nothing queued).
var enqueueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
redis.call('SET', KEYS[5], ARGV[2])
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local ops = redis.call('INCRBY', KEYS[2], ARGV[3])
local bytes = redis.call('INCRBY', KEYS[3], ARGV[4])
if n == 1 or ops >= tonumber(ARGV[5]) or bytes >= tonumber(ARGV[6]) then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 0)
end
return n
`)

// cancelScript withdraws a request not yet taken. KEYS: queue qops qbytes
// payload; ARGV: entry nops nbytes. Returns 1 if it was withdrawn, 0 if a
// flusher had taken it (or it was never queued).
var cancelScript = redis.NewScript(`
local n = redis.call('LREM', KEYS[1], 1, ARGV[1])
if n == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
  redis.call('DECRBY', KEYS[3], ARGV[3])
  redis.call('DEL', KEYS[4])
end
return n
`)

// takeScript gives the lock's holder the batch to commit: the one in
// processing if there is one (a flusher died or failed with it),
// otherwise up to the caps from the head of the queue, at least one
// request, moved into processing under the new batch's "id prev".
// KEYS: lock queue qops qbytes proc batch; ARGV: token newbatch maxOps
// maxBytes. Returns {0} if the caller does not hold the lock, {2} if there
// is nothing to commit, else {1, "id prev", entries}.
var takeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local cur = redis.call('GET', KEYS[6])
if cur then return {1, cur, redis.call('LRANGE', KEYS[5], 0, -1)} end
local maxOps, maxBytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local items, ops, bytes = {}, 0, 0
while true do
  local e = redis.call('LINDEX', KEYS[2], 0)
  if not e then break end
  local n, b = string.match(e, '^%x+ (%d+) (%d+) ')
  n, b = tonumber(n), tonumber(b)
  if n == nil or b == nil then
    -- Not an entry this code wrote: drop it rather than stall the pool.
    redis.call('LPOP', KEYS[2])
  else
    if #items > 0 and (ops + n > maxOps or bytes + b > maxBytes) then break end
    redis.call('LPOP', KEYS[2])
    items[#items + 1] = e
    ops, bytes = ops + n, bytes + b
  end
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SET', KEYS[3], 0)
  redis.call('SET', KEYS[4], 0)
else
  redis.call('DECRBY', KEYS[3], ops)
  redis.call('DECRBY', KEYS[4], bytes)
end
if #items == 0 then return {2} end
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[5], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('SET', KEYS[6], ARGV[2])
return {1, ARGV[2], items}
`)

// finishScript answers a batch's requests and, when ARGV[4] is "1",
// deletes the batch and its payloads. KEYS: lock proc batch, then
// nPayload payload keys, then one result list per answer; ARGV: token
// "id prev" nPayload delete, then the answers. Returns 0 if the caller
// does not hold the lock, -1 if the batch in processing is another, 1
// when done.
var finishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
local np = tonumber(ARGV[3])
for i = 1, #ARGV - 4 do
  local k = KEYS[3 + np + i]
  redis.call('RPUSH', k, ARGV[4 + i])
  redis.call('PEXPIRE', k, 60000)
end
if ARGV[4] == '1' then
  for i = 1, np do redis.call('DEL', KEYS[3 + i]) end
  redis.call('DEL', KEYS[2], KEYS[3])
end
return 1
`)

// renewScript extends the lock if the caller holds it. KEYS: lock; ARGV:
// token ttl_ms. Returns 1 if extended, 0 if another holds it or none.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript deletes the lock if the caller holds it. KEYS: lock;
// ARGV: token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)
