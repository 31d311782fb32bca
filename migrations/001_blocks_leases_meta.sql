-- The block store: what docs/design.md §3 allows, and nothing else.
--
-- blocks holds each block's content and what proves ownership of it. data
-- is stored out of line and uncompressed (ciphertext does not compress), so
-- a row that is not rewritten never has its data rewritten either.
CREATE TABLE blocks (
    id         uuid  NOT NULL PRIMARY KEY,
    proof_hash bytea NOT NULL CHECK (octet_length(proof_hash) = 32),
    etag       bytea NOT NULL CHECK (octet_length(etag) = 16),
    data       bytea NOT NULL
);
ALTER TABLE blocks ALTER COLUMN data SET STORAGE EXTERNAL;

-- leases says which keyed time bucket each block is stamped with: one row
-- per block, in the partition of its bucket. Renewal moves the row to the
-- current bucket's partition and leaves blocks alone; purge empties and
-- drops the partitions of expired buckets, so its cost follows the expired
-- blocks only. Partitions are created on demand by the store and named
-- after the bucket's hex, which is keyed and so says nothing about time.
CREATE TABLE leases (
    bucket bytea NOT NULL CHECK (octet_length(bucket) = 16),
    id     uuid  NOT NULL
) PARTITION BY LIST (bucket);
CREATE INDEX leases_id ON leases (id);

-- meta holds the deployment's parameters: block size, bucket key
-- fingerprint and the highest period seen (the purge's clock guard).
CREATE TABLE meta (
    key   text  NOT NULL PRIMARY KEY,
    value bytea NOT NULL
);

-- The store checks inside each write statement that it touched exactly the
-- rows it locked and read, so a transaction that finds the store otherwise
-- fails before it can commit.
CREATE FUNCTION blindstore_expect_rows(got bigint, want bigint, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF got <> want THEN
        RAISE EXCEPTION 'blindstore: % touched % rows, expected %', what, got, want
            USING ERRCODE = 'data_corrupted';
    END IF;
END
$$;
