package bolt

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/blindstore/blindstore/blobstore"
	"go.etcd.io/bbolt"
)

// Params returns the block size and bucket-key fingerprint the store was
// created with, as they are on disk now. Open already compared them with
// the configured ones; the purge reads them again right before deleting
// anything, because a purge under another key would delete every block.
func (s *Store) Params(ctx context.Context) (blobstore.Params, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.Params{}, err
	}
	var p blobstore.Params
	err := s.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("the meta bucket is missing")
		}
		bs, fp := meta.Get(keyBlockSize), meta.Get(keyFingerprint)
		if len(bs) != 8 || len(fp) != len(p.Fingerprint) {
			return errors.New("the stored parameters are damaged")
		}
		p.BlockSize = int(binary.BigEndian.Uint64(bs))
		copy(p.Fingerprint[:], fp)
		return nil
	})
	if err != nil {
		return blobstore.Params{}, wrapErr("read parameters", err)
	}
	return p, nil
}
