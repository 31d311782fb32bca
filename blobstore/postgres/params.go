package postgres

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/blindstore/blindstore/blobstore"
)

// Params returns the block size and bucket-key fingerprint the database
// was created with, as they are stored now. Open already compared them
// with the configured ones; the purge reads them again right before
// deleting anything, because a purge under another key (or against a
// database another deployment now owns) would delete every block.
func (s *Store) Params(ctx context.Context) (blobstore.Params, error) {
	var bs, fp []byte
	err := s.pool.QueryRow(ctx,
		"SELECT (SELECT value FROM meta WHERE key = $1), (SELECT value FROM meta WHERE key = $2)",
		metaBlockSize, metaFingerprint).Scan(&bs, &fp)
	if err != nil {
		return blobstore.Params{}, classify("read stored parameters", err)
	}
	var p blobstore.Params
	if len(bs) != 8 || len(fp) != len(p.Fingerprint) {
		return blobstore.Params{}, fmt.Errorf("postgres: meta holds malformed parameters (block size %d bytes, fingerprint %d bytes)", len(bs), len(fp))
	}
	p.BlockSize = int(binary.BigEndian.Uint64(bs))
	copy(p.Fingerprint[:], fp)
	return p, nil
}
