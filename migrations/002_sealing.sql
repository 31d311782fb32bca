-- Sealing (docs/design.md §6): a copy of the store must not replay who wrote
-- what, or when. PostgreSQL keeps with every row the transaction that
-- wrote it (xmin) and its place (ctid), so rows written together stay
-- recognisable together until they are written anew.
--
-- Writes no longer touch blocks and leases (now "the sealed part"). They
-- go to one of two hot sides, a or b; meta's hot_side says which one takes
-- writes. A seal switches writers to the other side, then rewrites the
-- side it left into the sealed part in a random order, in one
-- transaction, and empties it with TRUNCATE, which leaves no dead rows
-- behind. Lookups take the newest state of a block: the active side, then
-- the other side, then the sealed part.
--
-- A hot lease row is written for every change of a block (put, renewal,
-- delete): it is the one row that every writer of that block must insert
-- or lock, so that two writers never decide on stale states. A NULL bucket
-- is a tombstone: the block was deleted (or purged) since the last seal.
-- A hot block row holds data written since the last seal; a renewal
-- writes no block row, so the sealed data stays where it is.
CREATE TABLE blocks_hot_a (
    id         uuid  NOT NULL PRIMARY KEY,
    proof_hash bytea NOT NULL CHECK (octet_length(proof_hash) = 32),
    etag       bytea NOT NULL CHECK (octet_length(etag) = 16),
    data       bytea NOT NULL
);
ALTER TABLE blocks_hot_a ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE blocks_hot_b (
    id         uuid  NOT NULL PRIMARY KEY,
    proof_hash bytea NOT NULL CHECK (octet_length(proof_hash) = 32),
    etag       bytea NOT NULL CHECK (octet_length(etag) = 16),
    data       bytea NOT NULL
);
ALTER TABLE blocks_hot_b ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE leases_hot_a (
    id     uuid  NOT NULL PRIMARY KEY,
    bucket bytea CHECK (octet_length(bucket) = 16)
);
CREATE TABLE leases_hot_b (
    id     uuid  NOT NULL PRIMARY KEY,
    bucket bytea CHECK (octet_length(bucket) = 16)
);

INSERT INTO meta (key, value) VALUES ('hot_side', '\x61'::bytea);

-- A writer locks the side it believes active (ROW EXCLUSIVE), then calls
-- this, so that its snapshot is taken after the lock: a seal that switched
-- sides first is seen, and a writer that got there first holds the seal's
-- switch back until it commits. SQLSTATE BS001 tells the store to reload
-- the side and run the transaction again.
CREATE FUNCTION blindstore_expect_side(want bytea) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM meta WHERE key = 'hot_side' AND value = want) THEN
        RAISE EXCEPTION 'blindstore: writes moved to the other hot side'
            USING ERRCODE = 'BS001';
    END IF;
END
$$;

-- Rows written before this migration still carry the transactions that
-- wrote them, in write order. Rewrite them all once, in a random order, so
-- that an existing store starts out sealed: TRUNCATE gives both tables new
-- files (no dead rows, no old row order), and every row comes back with
-- this migration's transaction and a random place.
CREATE TEMP TABLE blindstore_reseal_blocks (LIKE blocks INCLUDING STORAGE) ON COMMIT DROP;
INSERT INTO blindstore_reseal_blocks (id, proof_hash, etag, data) SELECT id, proof_hash, etag, data FROM blocks;
CREATE TEMP TABLE blindstore_reseal_leases ON COMMIT DROP AS SELECT bucket, id FROM leases;
TRUNCATE blocks, leases;
INSERT INTO blocks (id, proof_hash, etag, data)
    SELECT id, proof_hash, etag, data FROM blindstore_reseal_blocks ORDER BY random();
INSERT INTO leases (bucket, id) SELECT bucket, id FROM blindstore_reseal_leases ORDER BY random();
