package bolt

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// BenchmarkRenew runs sealtest.BenchRenew, as make bench renews. Run:
//
//	go test -run '^$' -bench Renew -benchtime 3x ./blobstore/bolt/
//
// The raw baseline is bbolt rewriting as many 48-byte records in place
// in one flat bucket, in transactions of the same size.
func BenchmarkRenew(b *testing.B) {
	var fp bucketer.Fingerprint
	s, err := Open(filepath.Join(b.TempDir(), "blocks.db"), blobstore.Params{BlockSize: sealtest.RenewBlockSize, Fingerprint: fp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	raw := rawDB(b)
	sealtest.BenchRenew(b, sealtest.RenewBench{
		Store: s,
		Raw: sealtest.RenewBaseline{
			Load: func(b *testing.B, ids []wire.ID, _ bucketer.Bucket) {
				// In key order: bbolt inserts into a node's sorted slice,
				// so one transaction's random inserts into one fresh node
				// cost n².
				sorted := slices.Clone(ids)
				slices.SortFunc(sorted, func(x, y wire.ID) int { return bytes.Compare(x[:], y[:]) })
				err := raw.Update(func(tx *bbolt.Tx) error {
					rec := make([]byte, recordSize)
					for _, id := range sorted {
						if err := tx.Bucket(bucketBlocks).Put(id[:], rec); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			},
			Renew: func(b *testing.B, ids []wire.ID, bucket bucketer.Bucket) {
				err := raw.Update(func(tx *bbolt.Tx) error {
					bk := tx.Bucket(bucketBlocks)
					for _, id := range ids {
						rec := make([]byte, recordSize)
						copy(rec, bucket[:])
						if err := bk.Put(id[:], rec); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			},
		},
		Written: bytesWritten,
	})
}
