-- Renewal without row locks, and in place (docs/design.md §3 is
-- unchanged: no column is added).
--
-- A renewal rewrites one hot lease row. Its bucket column is not indexed,
-- so PostgreSQL can update the row on its own page without touching the
-- primary key (a heap-only update), but only if the page has room for the
-- new version. Packed full by inserts, every renewal moved the row to
-- another page and inserted a new index entry. Half of each page is left
-- for renewals; a hot side is emptied at every seal, so its tables stay
-- small. It applies to pages written from now on: the side in use keeps
-- its full pages until the next seal empties it.
ALTER TABLE leases_hot_a SET (fillfactor = 50);
ALTER TABLE leases_hot_b SET (fillfactor = 50);

-- A write transaction no longer locks the hot lease rows of blocks it only
-- renews: it reads them unlocked, and its update admits a row only if no
-- other transaction wrote it since (its xmin is still the one read).
-- Fewer rows than asked means another writer got there first: the
-- transaction fails with serialization_failure and runs again, as it does
-- after losing an insert race.
CREATE FUNCTION blindstore_expect_unchanged(got bigint, want bigint, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF got <> want THEN
        RAISE EXCEPTION 'blindstore: % found % of % rows as read, the others changed since', what, got, want
            USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
