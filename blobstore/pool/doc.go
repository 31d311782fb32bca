// Package pool is blindstore's write pool (docs/design.md §5): every put,
// delete and renewal of the service goes through it. It gathers the
// operations of many requests for a short window, or until a cap of ops
// or bytes, lays them out in a random order, commits them to the store in
// one transaction, and answers each request with its own results, only
// after the commit. That is group commit, which is fast, and mixing: the
// rows, the write-ahead log and the transaction ids of one commit hold
// many clients' writes in an order that says nothing about who sent what
// when.
//
// Two pools implement blobstore.Committer:
//
//   - Pool, in one process: the default, and the only one for the
//     embedded store, which one process owns.
//   - RedisPool: several instances on one PostgreSQL share one queue in
//     Redis, so a batch mixes writes that arrived at every instance.
//     Exactly one instance at a time, the flusher, commits.
//
// # Order
//
// The permutation is uniform among the orders that keep, within each
// request, the order of its ops on one block (a request's own sequence
// means what it says). Requests in one batch were concurrent, so their
// relative order is free. A request is never split across commits: its
// ops are committed together, as the API promises for a batch write.
//
// # The Redis pool: acknowledged means committed
//
// A request is answered after the database commit of its batch, never on
// enqueue. (A mode that acknowledged on enqueue, allowed by the design
// when Redis fsyncs every write, is not offered: the answer to a write,
// 201 or 204, 403, 412, is decided by the store's state at commit, which
// the enqueuing instance cannot know, so such a mode could only answer
// "accepted" and would need the API to change.)
//
// A request is a payload key (its ops) and an entry in the shared queue.
// The flusher holds a lock with a time to live that it renews; it moves up
// to a cap of entries from the queue into a processing list in one Lua
// script, recording the batch's random id and the id of the batch before
// it, commits, pushes each request's results to its instance's result
// list, and deletes the processing list and the payloads, again in one
// script. Every script checks the lock first, so a flusher that lost the
// lock changes nothing in Redis.
//
// A flusher that dies mid-batch leaves the processing list. The next
// flusher, before it takes anything new, finishes that batch: it commits
// it if it was not committed, and answers its requests.
//
// # Why a replay is safe
//
// Redis cannot tell whether a dead flusher's commit happened, and
// applying a batch twice is not harmless: two compare-and-swaps of one
// block in one batch (If-Match A→B, If-Match C→A, from two devices)
// replayed on the state they left can end in a state no order of the two
// requests gives. So the database decides (blobstore/postgres fence.go):
// its write_pool meta row holds the flusher's random token and the id of
// the last batch committed, and a fenced commit checks both inside its
// transaction, then records its own batch id. A batch is applied only if
// the row's last id is the batch's predecessor: at most once, and never
// after a later batch, even if Redis restarts from an old snapshot. A
// replay that finds its batch already committed applies nothing; the
// results of that commit are lost, so its requests are answered 503
// (clients retry; operations are idempotent from the client's side, and a
// retried create-only put that gets 412 carries its own ETag back).
//
// A flusher that is only paused (a long GC, a partition) and wakes after
// another took over is stopped by the same row: the new flusher wrote its
// token at takeover, in a transaction that waits for any fenced commit in
// progress, so the old one's next commit fails and commits nothing.
//
// While the database is down, the flusher keeps the batch and tries again;
// its requests are answered 503 at once (outcome unknown) so that clients
// are not kept waiting. While Redis is down, requests are answered 503.
// No request waits longer than RedisOptions.AckTimeout, and one that
// Redis lost in a restart is answered 503 within two seconds.
//
// # What the package must never do
//
// It never logs block IDs, proofs, ETags, request ids or addresses, and
// holds nothing beyond what a pending request needs: Redis keeps a
// request's ops (ids, proof hashes, data) only until its batch is
// committed, under keys named by random request ids, with no timestamp;
// results live a minute at most. The Pool keeps no reference to an op's
// data once the request is answered.
package pool
