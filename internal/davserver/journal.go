package davserver

import (
	"bufio"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// The journal is where a small PUT is made durable before it is
// answered, so that the answer need not wait for the account's index
// update (a write window of the server, for a batch of files that the
// client's parallel transfers bound). It lives in the configuration
// directory beside the session and holds ciphertext only: names, modes,
// times and contents are sealed under a key derived from the account
// key (client.Account.LocalKey) and a random salt of the file, with the
// record's number as nonce, so records can be neither read nor swapped.
//
// A file is a header (magic, salt) and records, each a 4-byte length and
// a sealed body: a put (sequence number, mode, time, name, data) or the
// sequence numbers of puts now in the account. It is appended to and
// synced; once every put it holds is committed it is replaced by an
// empty one. At start the puts not known as committed are read back,
// and a record cut short by a crash (never answered: the answer waits
// for the sync) ends the replay.

const journalMagic = "blindstore webdav journal 1\n"

const (
	recPut  = 1
	recDone = 2
)

// maxRecord bounds a record's sealed body: a small PUT and its name.
const maxRecord = smallPut + 8192

// journal is an open journal file.
type journal struct {
	path string
	key  [32]byte // the account's journal key, before the file's salt

	mu     sync.Mutex // guards f, w, aead, n, off
	f      *os.File
	w      *bufio.Writer
	aead   cipher.AEAD
	n      uint64 // records written: the next nonce
	off    int64  // bytes written, buffered ones included
	unlock func()

	syncMu sync.Mutex // one fsync at a time; those waiting share the next
	synced int64      // bytes known to be on disk
}

// journalEntry is a put read back from the journal.
type journalEntry struct {
	seq   uint64
	name  string
	mode  fs.FileMode
	mtime time.Time
	data  []byte
}

// journalPath is the journal's file in dir for the account whose key is
// key: named by a digest of the key, so that two accounts' sessions in
// one directory keep apart and the name says nothing of the account.
func journalPath(dir string, key [32]byte) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("file name"))
	return filepath.Join(dir, "webdav-journal-"+hex.EncodeToString(m.Sum(nil)[:8]))
}

// openJournal locks and reads the journal at path, if any, and returns
// it rewritten with only the puts not known as committed, and those
// puts, oldest first.
func openJournal(path string, key [32]byte) (*journal, []journalEntry, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the journal's directory: %w", err)
	}
	unlock, err := lockJournal(path + ".lock")
	if err != nil {
		return nil, nil, err
	}
	live, err := readJournal(path, key)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	j := &journal{path: path, key: key, unlock: unlock}
	if err := j.start(live); err != nil {
		unlock()
		return nil, nil, err
	}
	return j, live, nil
}

// readJournal returns the puts of the journal at path that no done
// record names, oldest first; none if there is no journal.
func readJournal(path string, key [32]byte) ([]journalEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	head := make([]byte, len(journalMagic)+32)
	if _, err := io.ReadFull(r, head); err != nil {
		// Cut short while it was being created: it held nothing yet.
		return nil, nil
	}
	if string(head[:len(journalMagic)]) != journalMagic {
		return nil, fmt.Errorf("%s is not a journal of blind serve webdav", path)
	}
	aead, err := journalAEAD(key, head[len(journalMagic):])
	if err != nil {
		return nil, err
	}
	var puts []journalEntry
	done := map[uint64]bool{}
	for n := uint64(0); ; n++ {
		var lb [4]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			break // the end, or a length cut short by a crash
		}
		l := binary.BigEndian.Uint32(lb[:])
		if l > maxRecord+uint32(aead.Overhead()) {
			break
		}
		sealed := make([]byte, l)
		if _, err := io.ReadFull(r, sealed); err != nil {
			break // a record cut short by a crash: never answered
		}
		p, err := aead.Open(sealed[:0], nonce(n), sealed, nil)
		if err != nil {
			return nil, fmt.Errorf("the journal %s does not open with this account's key (record %d): damaged; --journal=false starts without it, and moving it away loses the files it holds", path, n)
		}
		switch {
		case len(p) >= 1+8 && p[0] == recDone:
			for q := p[1:]; len(q) >= 8; q = q[8:] {
				done[binary.BigEndian.Uint64(q)] = true
			}
		case len(p) >= 1+8+4+8+4+2 && p[0] == recPut:
			e := journalEntry{seq: binary.BigEndian.Uint64(p[1:])}
			e.mode = fs.FileMode(binary.BigEndian.Uint32(p[9:]))
			e.mtime = time.Unix(int64(binary.BigEndian.Uint64(p[13:])), int64(binary.BigEndian.Uint32(p[21:]))).UTC()
			nl := int(binary.BigEndian.Uint16(p[25:]))
			if len(p) < 27+nl {
				return nil, fmt.Errorf("the journal %s holds a malformed record (%d)", path, n)
			}
			e.name = string(p[27 : 27+nl])
			e.data = p[27+nl:]
			puts = append(puts, e)
		default:
			return nil, fmt.Errorf("the journal %s holds a malformed record (%d)", path, n)
		}
	}
	live := puts[:0]
	for _, e := range puts {
		if !done[e.seq] {
			live = append(live, e)
		}
	}
	return live, nil
}

func journalAEAD(key [32]byte, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key[:], salt, "blindstore webdav journal", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(k)
}

func nonce(n uint64) []byte {
	b := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint64(b[len(b)-8:], n)
	return b
}

// start replaces the journal by a new one, with a new salt, holding the
// puts of live: written beside it, synced, then renamed over it, so that
// a crash meanwhile leaves one or the other whole.
func (j *journal) start(live []journalEntry) error {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	aead, err := journalAEAD(j.key, salt)
	if err != nil {
		return err
	}
	tmp := j.path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating the journal: %w", err)
	}
	nj := &journal{f: f, w: bufio.NewWriterSize(f, 256<<10), aead: aead}
	nj.w.WriteString(journalMagic)
	nj.w.Write(salt)
	nj.off = int64(len(journalMagic) + len(salt))
	for _, e := range live {
		nj.appendPut(e)
	}
	err = nj.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(j.path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing the journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	// The caller holds syncMu, or is alone with j.
	j.f, j.w, j.aead, j.n, j.off, j.synced = f, nj.w, aead, nj.n, nj.off, nj.off
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// seal appends one record; j.mu is held.
func (j *journal) seal(p []byte) {
	sealed := j.aead.Seal(nil, nonce(j.n), p, nil)
	j.n++
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], uint32(len(sealed)))
	j.w.Write(lb[:])
	j.w.Write(sealed)
	j.off += int64(len(lb) + len(sealed))
}

func (j *journal) appendPut(e journalEntry) {
	p := make([]byte, 0, 27+len(e.name)+len(e.data))
	p = append(p, recPut)
	p = binary.BigEndian.AppendUint64(p, e.seq)
	p = binary.BigEndian.AppendUint32(p, uint32(e.mode))
	p = binary.BigEndian.AppendUint64(p, uint64(e.mtime.Unix()))
	p = binary.BigEndian.AppendUint32(p, uint32(e.mtime.Nanosecond()))
	p = binary.BigEndian.AppendUint16(p, uint16(len(e.name)))
	p = append(p, e.name...)
	p = append(p, e.data...)
	j.seal(p)
}

// put appends e and returns the offset it ends at, for sync. The
// bufio.Writer's errors stick: the next flush reports them.
func (j *journal) put(e journalEntry) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.appendPut(e)
	return j.off
}

// done records that the puts seqs are in the account; it is not synced
// on its own: lost in a crash, the replay finds those files in the
// index as they were put and skips them.
func (j *journal) done(seqs []uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := make([]byte, 0, 1+8*len(seqs))
	p = append(p, recDone)
	for _, s := range seqs {
		p = binary.BigEndian.AppendUint64(p, s)
	}
	j.seal(p)
}

// sync returns once everything up to off is on disk. Callers that come
// while a sync is under way wait for it and then share one for all of
// them: one fsync for many PUTs.
func (j *journal) sync(off int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= off {
		return nil
	}
	j.mu.Lock()
	end := j.off
	err := j.w.Flush()
	f := j.f
	j.mu.Unlock()
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	j.synced = end
	return nil
}

// reset starts a journal of live alone: every other put it held is
// committed.
func (j *journal) reset(live []journalEntry) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.start(live)
}

// size is the journal's length in bytes.
func (j *journal) size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.off
}

// close flushes the journal and lets it go; empty (every put committed)
// it is removed.
func (j *journal) close(empty bool) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil // closed already
	}
	defer j.unlock()
	defer func() { j.f = nil }()
	err := j.w.Flush()
	if err == nil {
		err = j.f.Sync()
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && empty {
		err = os.Remove(j.path)
	}
	return err
}
