package format

// The test vectors of docs/spec.md, in docs/vectors.json. TestVectors
// computes every vector from this package's code and compares it with
// the file, then stores the account they describe on a real server and
// reads it back through Login, Get and OpenCapability: the file is what
// the code writes, and what it writes the code reads. Regenerate it with
//
//	go test ./client/format -run TestVectors -update
//
// Random draws (IDs, nonces, keys) come from vecRand, a SHA-256 counter
// stream, so the file is the same on every run; the vectors list every
// drawn value, so an implementation under test needs no such stream.

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
	"golang.org/x/text/unicode/norm"
)

const vectorsPath = "../../docs/vectors.json"

// vecBlockSize is the block size of every block vector: the smallest a
// deployment may choose, to keep the file short. Nothing in the format
// depends on it but the capacities it implies.
const vecBlockSize = wire.MinBlockSize

// vecRand is a deterministic byte stream: SHA-256(label ‖ uint32be(i))
// for i = 0, 1, …
type vecRand struct {
	label string
	ctr   uint32
	buf   []byte
}

func (r *vecRand) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			s := sha256.Sum256(binary.BigEndian.AppendUint32([]byte(r.label), r.ctr))
			r.ctr++
			r.buf = s[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

func (r *vecRand) bytes(n int) []byte {
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func (r *vecRand) key() Key { return Key(r.bytes(KeySize)) }

func (r *vecRand) id() wire.ID {
	id, _ := newID(r)
	return id
}

func (r *vecRand) nonce() *[NonceSize]byte { return (*[NonceSize]byte)(r.bytes(NonceSize)) }

type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// --- the file's shape (documented in docs/spec.md §1) ---

type vecFile struct {
	About      string           `json:"about"`
	Version    int              `json:"version"`
	BlockSize  int              `json:"block_size"`
	Capacity   int              `json:"payload_capacity"`
	InlineMax  int              `json:"inline_max"`
	Passwords  []vecPassword    `json:"passwords"`
	Recovery   vecRecovery      `json:"recovery"`
	Proofs     []vecProof       `json:"proofs"`
	Padme      []vecPadme       `json:"padme"`
	Chunker    vecChunker       `json:"chunker"`
	Account    vecAccount       `json:"account"`
	Legacy     vecLegacy        `json:"legacy"`
	Capability []vecCapabilityS `json:"capability_strings"`
}

type vecLocator struct {
	ID    string   `json:"id"`
	Proof hexBytes `json:"proof"`
	Key   hexBytes `json:"key"`
}

type vecArgon struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Length    int    `json:"length"`
}

type vecPassword struct {
	Username           string      `json:"username"`
	Password           string      `json:"password"`
	UsernameNormalized string      `json:"username_normalized"`
	PasswordNormalized hexBytes    `json:"password_normalized"`
	Salt               hexBytes    `json:"salt"`
	Argon2id           vecArgon    `json:"argon2id"`
	Master             hexBytes    `json:"master"`
	Locator            vecLocator  `json:"locator"`
	DeviceKey          hexBytes    `json:"device_key,omitempty"`
	DeviceKeyFile      string      `json:"device_key_file,omitempty"`
	DeviceMaster       hexBytes    `json:"device_master,omitempty"`
	DeviceLocator      *vecLocator `json:"device_locator,omitempty"`
}

type vecRecoveryParse struct {
	Input string `json:"input"`
	Valid bool   `json:"valid"`
}

type vecRecovery struct {
	Code    hexBytes           `json:"code_bytes"`
	String  string             `json:"code"`
	Parse   []vecRecoveryParse `json:"parse"`
	Master  hexBytes           `json:"master"`
	Locator vecLocator         `json:"locator"`
}

type vecProof struct {
	OwnerSecret hexBytes `json:"owner_secret"`
	ID          string   `json:"id"`
	WriteProof  hexBytes `json:"write_proof"`
	WriteB64    string   `json:"write_proof_base64url"`
	RenewProof  hexBytes `json:"renew_proof"`
	RenewB64    string   `json:"renew_proof_base64url"`
	ProofHash   hexBytes `json:"proof_hash"`
}

type vecPadme struct {
	N            int `json:"n"`
	Padme        int `json:"padme"`
	PaddedBlocks int `json:"padded_blocks"`
}

type vecChunker struct {
	AccountKey hexBytes `json:"account_key"`
	Seed       hexBytes `json:"seed"`
	Table      []string `json:"table"`
	InputLabel string   `json:"input_label"`
	InputLen   int      `json:"input_len"`
	InputHash  hexBytes `json:"input_sha256"`
	Capacity   int      `json:"capacity"`
	Min        int      `json:"min"`
	Chunks     []vecCut `json:"chunks"`
	Edit       vecEdit  `json:"edit"`
}

type vecCut struct {
	Len  int    `json:"len"`
	Mark string `json:"mark"`
	Old  bool   `json:"old,omitempty"`
}

type vecEdit struct {
	At     int      `json:"insert_at"`
	Insert string   `json:"insert"`
	Chunks []vecCut `json:"chunks"`
}

type vecBlock struct {
	Role    string   `json:"role,omitempty"`
	ID      string   `json:"id"`
	Key     hexBytes `json:"key"`
	Nonce   hexBytes `json:"nonce"`
	AD      hexBytes `json:"ad"`
	Payload hexBytes `json:"payload"`
	Block   hexBytes `json:"block"`
	ETag    hexBytes `json:"etag"`
	ETagHdr string   `json:"etag_header"`
	Proof   hexBytes `json:"write_proof"`
}

type vecRef struct {
	ID   string   `json:"id"`
	ETag hexBytes `json:"etag"`
}

type vecChunk struct {
	vecRef
	Size uint32   `json:"size"`
	Hash hexBytes `json:"hash"`
	Mark string   `json:"mark"`
}

type vecIndexFile struct {
	Name      string     `json:"name"`
	Size      uint64     `json:"size"`
	Mode      uint32     `json:"mode"`
	MtimeSec  int64      `json:"mtime_sec"`
	MtimeNsec int        `json:"mtime_nsec"`
	Renewed   uint64     `json:"renewed"`
	Hash      hexBytes   `json:"hash"`
	Key       hexBytes   `json:"key"`
	KeyShared bool       `json:"key_shared"`
	Inline    hexBytes   `json:"inline,omitempty"`
	Content   hexBytes   `json:"content"`
	Chunks    []vecChunk `json:"chunks"`
	Manifest  []vecRef   `json:"manifest"`
}

type vecLeaf struct {
	Len    int      `json:"len"`
	Files  int      `json:"files"`
	Blocks []vecRef `json:"blocks"`
}

type vecDir struct {
	Block   vecRef    `json:"block"`
	Renewed uint64    `json:"renewed"`
	Leaves  []vecLeaf `json:"leaves"`
}

type vecRootRef struct {
	Kind  uint8    `json:"kind"`
	ID    string   `json:"id"`
	Proof hexBytes `json:"proof"`
}

type vecAccount struct {
	Username     string     `json:"username"`
	Password     string     `json:"password"`
	AccountKey   hexBytes   `json:"account_key"`
	OwnerSecret  hexBytes   `json:"owner_secret"`
	RootPayload  hexBytes   `json:"root_payload"`
	Root         vecBlock   `json:"root"`
	RecoveryRoot vecBlock   `json:"recovery_root"`
	HeadMaster   hexBytes   `json:"head_master"`
	HeadLocator  vecLocator `json:"head_locator"`
	Head         vecHead    `json:"head"`
	Index        vecIndex   `json:"index"`
	Tree         []vecDir   `json:"tree"`
	IndexBlocks  []vecBlock `json:"index_blocks"`
	DataBlocks   []vecBlock `json:"data_blocks"`
	Share        vecShare   `json:"share"`
}

type vecHead struct {
	Version    uint8        `json:"version"`
	Generation uint64       `json:"generation"`
	Dirs       []vecRef     `json:"dirs"`
	Roots      []vecRootRef `json:"roots"`
	Block      vecBlock     `json:"block"`
}

type vecIndex struct {
	Generation uint64         `json:"generation"`
	Renewed    uint64         `json:"renewed"`
	Files      []vecIndexFile `json:"files"`
}

type vecShare struct {
	File           string     `json:"file"`
	ManifestID     string     `json:"manifest_id"`
	CapKey         hexBytes   `json:"cap_key"`
	Capability     string     `json:"capability"`
	Leaf           hexBytes   `json:"leaf"`
	EncodedLen     int        `json:"encoded_len"`
	ManifestBlocks []vecBlock `json:"manifest_blocks"`
	Pointer        vecBlock   `json:"pointer"`
}

type vecLegacy struct {
	IndexBody    hexBytes   `json:"index_v1_body"`
	IndexEncoded hexBytes   `json:"index_v1_encoded"`
	IndexBlocks  []vecBlock `json:"index_v1_blocks"`
	Head         vecBlock   `json:"head_v1"`
}

type vecCapabilityS struct {
	Input string `json:"input"`
	Valid bool   `json:"valid"`
}

// --- builders ---

func vecLoc(l Locator) vecLocator {
	return vecLocator{ID: l.ID.String(), Proof: l.Proof[:], Key: l.Key[:]}
}

func vecRefOf(r indexfile.Ref) vecRef { return vecRef{ID: r.ID.String(), ETag: r.ETag[:]} }

func vecRefs(rs []indexfile.Ref) []vecRef {
	out := []vecRef{}
	for _, r := range rs {
		out = append(out, vecRefOf(r))
	}
	return out
}

// encryptVec encrypts payload under key at id with the nonce drawn from rnd,
// and describes the block.
func encryptVec(t *testing.T, role string, key Key, id wire.ID, proof wire.WriteProof, payload []byte, rnd *vecRand) (vecBlock, []byte) {
	t.Helper()
	nonce := rnd.nonce()
	data, err := encryptWithNonce(key, id, payload, vecBlockSize, nonce)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt(key, id, data, vecBlockSize)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("%s: encrypted block does not decrypt to its payload: %v", role, err)
	}
	etag := wire.ETagOf(data)
	return vecBlock{Role: role, ID: id.String(), Key: key[:], Nonce: nonce[:], AD: blockAD(id), Payload: payload,
		Block: data, ETag: etag[:], ETagHdr: etag.String(), Proof: proof[:]}, data
}

func vecFileOf(f *indexfile.File, content []byte) vecIndexFile {
	v := vecIndexFile{Name: f.Name, Size: f.Size, Mode: uint32(f.Mode), MtimeSec: f.ModTime.Unix(), MtimeNsec: f.ModTime.Nanosecond(),
		Renewed: f.Renewed, Hash: f.Hash[:], Key: f.Key[:], KeyShared: f.KeyShared, Inline: f.Inline, Content: content,
		Chunks: []vecChunk{}, Manifest: vecRefs(f.Manifest)}
	for _, c := range f.Chunks {
		v.Chunks = append(v.Chunks, vecChunk{vecRef: vecRefOf(c.Ref), Size: c.Size, Hash: c.Hash[:], Mark: fmt.Sprintf("%016x", c.Mark)})
	}
	return v
}

// chunkStream returns n bytes of SHA-256(label ‖ uint32be(i)), i = 0, 1, …
func chunkStream(label string, n int) []byte {
	return (&vecRand{label: label}).bytes(n)
}

// chunkAll cuts data as a put does, with the marks and chunks of an old
// version (nil: none), and reports for each chunk whether it is an old
// one (same size and hash, each old chunk once).
func vecChunkAll(t *testing.T, data []byte, table *GearTable, capacity int, old []indexfile.Chunk) ([][]byte, []uint64, []bool) {
	t.Helper()
	c := NewChunker(bytes.NewReader(data), table, capacity)
	type cid struct {
		size uint32
		hash [32]byte
	}
	reuse := map[cid]int{}
	if len(old) > 0 {
		c.marks = map[uint64]struct{}{}
		for _, o := range old {
			c.marks[o.Mark] = struct{}{}
			reuse[cid{o.Size, o.Hash}]++
		}
	}
	var chunks [][]byte
	var marks []uint64
	var matched []bool
	buf := make([]byte, capacity)
	for {
		ch, mark, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id := cid{uint32(len(ch)), sha256.Sum256(ch)}
		m := reuse[id] > 0
		if m {
			reuse[id]--
		}
		c.Matched(m)
		chunks = append(chunks, bytes.Clone(ch))
		marks = append(marks, mark)
		matched = append(matched, m)
	}
	return chunks, marks, matched
}

func buildVectors(t *testing.T) *vecFile {
	t.Helper()
	v := &vecFile{
		About: "Test vectors of the blindstore client format. Field meanings: docs/spec.md §1. " +
			"Generated by client/format/vectors_test.go (go test ./client/format -run TestVectors -update).",
		Version:   1,
		BlockSize: vecBlockSize,
		Capacity:  PayloadCapacity(vecBlockSize),
		InlineMax: InlineMax(vecBlockSize),
	}

	// Passwords.
	type pw struct{ user, pass string }
	var pwLocs []Locator
	for i, c := range []pw{
		{"  Ａlice ", "correct horse battery staple"},
		{"E\u0301MILE Zola", "mot de passe e\u0301te\u0301 ﬁ"},
		{"\u00a0İSTANBUL ΟΔΥΣΣΕΥΣ", "Σ"},
	} {
		m, err := passwordMaster(KDFv1, c.user, c.pass)
		if err != nil {
			t.Fatal(err)
		}
		user, _ := NormalizeUsername(c.user)
		salt := sha256.Sum256([]byte(saltPrefix + user))
		loc := m.locator()
		p := vecPassword{Username: c.user, Password: c.pass, UsernameNormalized: user,
			PasswordNormalized: []byte(norm.NFC.String(c.pass)), Salt: salt[:],
			Argon2id: vecArgon{KDFv1.Time, KDFv1.Memory, KDFv1.Threads, KeySize}, Master: m[:], Locator: vecLoc(loc)}
		if i == 0 {
			var d DeviceKey
			for j := range d {
				d[j] = byte(j)
			}
			text, _ := d.MarshalText()
			dm := m.withDevice(d)
			dl, err := PasswordLocator(c.user, c.pass, &d)
			if err != nil {
				t.Fatal(err)
			}
			if dl != dm.locator() {
				t.Fatal("device locator disagrees")
			}
			vl := vecLoc(dl)
			p.DeviceKey, p.DeviceKeyFile, p.DeviceMaster, p.DeviceLocator = d[:], string(text), dm[:], &vl
		}
		pwLocs = append(pwLocs, loc)
		v.Passwords = append(v.Passwords, p)
	}

	// Recovery code.
	var code RecoveryCode
	for i := range code {
		code[i] = byte(100 + i)
	}
	var rm master
	expand(code[:], infoRecovery, rm[:])
	rloc := code.Locator()
	v.Recovery = vecRecovery{Code: code[:], String: code.String(), Master: rm[:], Locator: vecLoc(rloc)}
	s := code.String()
	lower := []byte(bytes.ToLower([]byte(s)))
	for _, in := range []string{
		s,
		string(lower),
		string(bytes.ReplaceAll([]byte(s), []byte("-"), nil)),
		string(bytes.ReplaceAll([]byte(s), []byte("-"), []byte(" "))),
		strings.NewReplacer("0", "o", "1", "l").Replace(string(lower)),
		strings.NewReplacer("0", "O", "1", "I").Replace(s),
		s[:len(s)-1],
		s + "0",
		s[:len(s)-1] + "U",
	} {
		c, err := ParseRecoveryCode(in)
		if err == nil && c != code {
			t.Fatalf("recovery code %q parses to another code", in)
		}
		v.Recovery.Parse = append(v.Recovery.Parse, vecRecoveryParse{Input: in, Valid: err == nil})
	}

	// Proofs.
	for _, seed := range []string{"proof vector 1", "proof vector 2"} {
		r := &vecRand{label: seed}
		o := OwnerSecret(r.key())
		id := r.id()
		w := o.WriteProof(id)
		rp := o.RenewProof(id)
		h := w.Hash()
		if rp.Hash() != h || w.Renew() != rp {
			t.Fatal("proof chain disagrees")
		}
		v.Proofs = append(v.Proofs, vecProof{OwnerSecret: o[:], ID: id.String(), WriteProof: w[:], WriteB64: wire.EncodeProof(w),
			RenewProof: rp[:], RenewB64: wire.EncodeProof(rp), ProofHash: h[:]})
	}

	// Padmé.
	for _, n := range []int{0, 1, 2, 3, 9, 100, 979, 980, 981, 1000, 5000, 65_537, 1 << 20, 3_000_000} {
		pb, err := indexfile.PaddedBlocks(n, v.Capacity)
		if err != nil {
			t.Fatal(err)
		}
		v.Padme = append(v.Padme, vecPadme{N: n, Padme: int(indexfile.Padme(uint64(n))), PaddedBlocks: pb})
	}

	// The account.
	rnd := &vecRand{label: "blindstore vectors: account"}
	root, err := newRoot(rnd)
	if err != nil {
		t.Fatal(err)
	}
	owner := root.OwnerSecret
	table := ChunkerTable(root.AccountKey)
	var seed [32]byte
	expand(root.AccountKey[:], infoChunker, seed[:])

	// Chunker, under the account's key.
	const chunkLabel = "blindstore vectors: chunker input"
	input := chunkStream(chunkLabel, 8000)
	inHash := sha256.Sum256(input)
	capy := PayloadCapacity(vecBlockSize)
	v.Chunker = vecChunker{AccountKey: root.AccountKey[:], Seed: seed[:], InputLabel: chunkLabel, InputLen: len(input), InputHash: inHash[:],
		Capacity: capy, Min: ChunkMin(capy)}
	for _, x := range table {
		v.Chunker.Table = append(v.Chunker.Table, fmt.Sprintf("%016x", x))
	}
	chunks, marks, _ := vecChunkAll(t, input, table, capy, nil)
	var oldChunks []indexfile.Chunk
	for i, c := range chunks {
		v.Chunker.Chunks = append(v.Chunker.Chunks, vecCut{Len: len(c), Mark: fmt.Sprintf("%016x", marks[i])})
		oldChunks = append(oldChunks, indexfile.Chunk{Size: uint32(len(c)), Hash: sha256.Sum256(c), Mark: marks[i]})
	}
	const ins = "an insertion of forty bytes, to be found"
	edited := append(append(bytes.Clone(input[:1500]), ins...), input[1500:]...)
	echunks, emarks, ematched := vecChunkAll(t, edited, table, capy, oldChunks)
	v.Chunker.Edit = vecEdit{At: 1500, Insert: ins}
	for i, c := range echunks {
		v.Chunker.Edit.Chunks = append(v.Chunker.Edit.Chunks, vecCut{Len: len(c), Mark: fmt.Sprintf("%016x", emarks[i]), Old: ematched[i]})
	}

	contents := map[string][]byte{}
	// add marks a block of the account (client's TestVectorAccount stores
	// every block under "account" and logs in to it).
	add := func(b vecBlock, _ wire.ID, _ wire.WriteProof, _ []byte) vecBlock { return b }
	period := uint64(655)
	mtime := time.Unix(1_700_000_000, 123_456_789).UTC()

	// Files: one inline, one empty, one in chunks (then shared).
	inline := []byte("hello, blindstore\n")
	fInline := indexfile.File{Name: "docs/a.txt", Size: uint64(len(inline)), Mode: 0o644, ModTime: mtime, Hash: sha256.Sum256(inline),
		Key: rnd.key(), Inline: inline, Renewed: period}
	fEmpty := indexfile.File{Name: "docs/empty", Mode: 0o600, ModTime: mtime.Add(time.Second), Hash: sha256.Sum256(nil), Key: rnd.key(), Renewed: period}
	big := input[:2200]
	fBig := indexfile.File{Name: "photos/2024/big.bin", Size: uint64(len(big)), Mode: 0o640, ModTime: mtime.Add(-time.Hour), Hash: sha256.Sum256(big),
		Key: rnd.key(), Renewed: period - 1}
	contents[fInline.Name], contents[fEmpty.Name], contents[fBig.Name] = inline, nil, big
	bchunks, bmarks, _ := vecChunkAll(t, big, ChunkerTable(root.AccountKey), capy, nil)
	for i, c := range bchunks {
		id := rnd.id()
		w := owner.WriteProof(id)
		b, data := encryptVec(t, fmt.Sprintf("data: %s chunk %d", fBig.Name, i), Key(fBig.Key), id, w, c, rnd)
		// The put pipeline encrypts through EncryptFrameInto: the same bytes.
		frame := make([]byte, FrameSize(vecBlockSize))
		copy(frame[LengthSize:], c)
		if alt := EncryptFrameInto(make([]byte, vecBlockSize), Key(fBig.Key), id, frame, len(c), (*[NonceSize]byte)(b.Nonce)); !bytes.Equal(alt, data) {
			t.Fatal("EncryptFrameInto and Encrypt disagree")
		}
		v.Account.DataBlocks = append(v.Account.DataBlocks, add(b, id, w, data))
		fBig.Chunks = append(fBig.Chunks, indexfile.Chunk{Ref: indexfile.Ref{ID: id, ETag: wire.ETagOf(data)}, Size: uint32(len(c)),
			Hash: sha256.Sum256(c), Mark: bmarks[i]})
	}

	// Its share manifest, as writeManifest makes it.
	m := fBig
	m.Name = "big.bin"
	m.Manifest, m.Renewed, m.KeyShared = nil, 0, false
	leaf, err := indexfile.EncodeLeaf([]indexfile.File{m})
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := indexfile.Split(leaf, capy)
	if err != nil {
		t.Fatal(err)
	}
	pid := rnd.id()
	ck := CapKey(fBig.Key, pid)
	capab := Capability{Manifest: pid, Key: ck}
	ptr := []byte{PointerVersion}
	ptr = binary.BigEndian.AppendUint64(ptr, uint64(len(leaf)))
	ptr = binary.BigEndian.AppendUint32(ptr, uint32(len(payloads)))
	share := vecShare{File: fBig.Name, ManifestID: pid.String(), CapKey: ck[:], Capability: capab.String(), Leaf: leaf, EncodedLen: len(leaf)}
	var manifest []indexfile.Ref
	for i, p := range payloads {
		id := rnd.id()
		w := owner.WriteProof(id)
		b, data := encryptVec(t, fmt.Sprintf("manifest block %d", i+1), ck, id, w, p, rnd)
		share.ManifestBlocks = append(share.ManifestBlocks, add(b, id, w, data))
		etag := wire.ETagOf(data)
		ptr = append(append(ptr, id[:]...), etag[:]...)
		manifest = append(manifest, indexfile.Ref{ID: id, ETag: etag})
	}
	pw0 := owner.WriteProof(pid)
	pb, pdata := encryptVec(t, "manifest pointer", ck, pid, pw0, ptr, rnd)
	share.Pointer = add(pb, pid, pw0, pdata)
	v.Account.Share = share
	fBig.Manifest = append([]indexfile.Ref{{ID: pid, ETag: wire.ETagOf(pdata)}}, manifest...)
	fBig.KeyShared = true

	idx := &indexfile.Index{Generation: 3, Renewed: period - 1, Files: []indexfile.File{fInline, fEmpty, fBig}}
	if err := idx.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := range idx.Files {
		f := &idx.Files[i]
		v.Account.Index.Files = append(v.Account.Index.Files, vecFileOf(f, contents[f.Name]))
	}
	v.Account.Index.Generation, v.Account.Index.Renewed = idx.Generation, idx.Renewed

	// The index tree, as a commit from an empty account encrypts it.
	tree, gone, err := (&indexfile.Tree{}).Update(&indexfile.Index{}, idx, capy, func(p []byte) (indexfile.Ref, error) {
		id := rnd.id()
		w := owner.WriteProof(id)
		role := "leaf"
		if len(p) >= 2 && p[1] != 1 {
			role = "dir"
		} else if len(p) == 3 && p[2] == 0 {
			role = "padding leaf"
		}
		b, data := encryptVec(t, role, root.AccountKey, id, w, p, rnd)
		v.Account.IndexBlocks = append(v.Account.IndexBlocks, add(b, id, w, data))
		return indexfile.Ref{ID: id, ETag: wire.ETagOf(data)}, nil
	})
	if err != nil || len(gone) != 0 {
		t.Fatal(err, gone)
	}
	for i, d := range tree.Dirs {
		vd := vecDir{Block: vecRefOf(d.Block)}
		if i == 0 {
			vd.Renewed = tree.Renewed
		}
		for _, l := range d.Leaves {
			vd.Leaves = append(vd.Leaves, vecLeaf{Len: l.Len, Files: l.Files, Blocks: vecRefs(l.Blocks)})
		}
		v.Account.Tree = append(v.Account.Tree, vd)
	}

	// Root and recovery root.
	loc := pwLocs[0]
	rp, err := MarshalRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	v.Account.Username, v.Account.Password = v.Passwords[0].Username, v.Passwords[0].Password
	v.Account.AccountKey, v.Account.OwnerSecret, v.Account.RootPayload = root.AccountKey[:], root.OwnerSecret[:], rp
	b, data := encryptVec(t, "password root", loc.Key, loc.ID, loc.Proof, rp, rnd)
	v.Account.Root = add(b, loc.ID, loc.Proof, data)
	b, data = encryptVec(t, "recovery root", rloc.Key, rloc.ID, rloc.Proof, rp, rnd)
	v.Account.RecoveryRoot = add(b, rloc.ID, rloc.Proof, data)

	// Head.
	ikm := append(append([]byte{}, root.AccountKey[:]...), root.OwnerSecret[:]...)
	var hm master
	expand(ikm, infoHead, hm[:])
	hloc := root.HeadLocator()
	if hloc != hm.locator() {
		t.Fatal("head locator disagrees")
	}
	v.Account.HeadMaster, v.Account.HeadLocator = hm[:], vecLoc(hloc)
	roots := []RootRef{{Kind: RootPassword, ID: loc.ID, Proof: loc.Proof}, {Kind: RootRecovery, ID: rloc.ID, Proof: rloc.Proof}}
	head := &Head{Generation: idx.Generation, Index: tree.DirBlocks(), Roots: roots}
	hp, err := MarshalHead(head)
	if err != nil {
		t.Fatal(err)
	}
	b, data = encryptVec(t, "head", hloc.Key, hloc.ID, hloc.Proof, hp, rnd)
	v.Account.Head = vecHead{Version: HeadVersion, Generation: head.Generation, Dirs: vecRefs(head.Index), Block: add(b, hloc.ID, hloc.Proof, data)}
	for _, r := range roots {
		v.Account.Head.Roots = append(v.Account.Head.Roots, vecRootRef{Kind: uint8(r.Kind), ID: r.ID.String(), Proof: r.Proof[:]})
	}

	// Format 1 (the first clients'): the index of the files format 1 can
	// hold, one padded blob, under a version 1 head. Readers only.
	old := &indexfile.Index{Generation: 2, Files: []indexfile.File{fEmpty, fBig}}
	old.Files[1].KeyShared = false
	enc1, err := indexfile.Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	v.Legacy.IndexEncoded = enc1
	v.Legacy.IndexBody = vecInflate(t, enc1[1:])
	lrnd := &vecRand{label: "blindstore vectors: format 1"}
	blocks1, r1, err := root.encryptIndex(enc1, vecBlockSize, lrnd)
	if err != nil {
		t.Fatal(err)
	}
	// encryptIndex drew each block's id, then its nonce, from lrnd: replay
	// the stream to describe them.
	replay := &vecRand{label: "blindstore vectors: format 1"}
	for _, sb := range blocks1 {
		id := replay.id()
		nonce := replay.nonce()
		p, err := Decrypt(root.AccountKey, id, sb.Data, vecBlockSize)
		if err != nil || id != sb.ID {
			t.Fatal("format 1 index block does not replay", err)
		}
		w := owner.WriteProof(id)
		v.Legacy.IndexBlocks = append(v.Legacy.IndexBlocks, vecBlock{Role: "format 1 index", ID: id.String(), Key: root.AccountKey[:], Nonce: nonce[:],
			AD: blockAD(id), Payload: p, Block: sb.Data, ETag: sb.ETag[:], ETagHdr: sb.ETag.String(), Proof: w[:]})
	}
	h1 := &Head{Version: HeadV1, Generation: 2, IndexLen: r1.IndexLen, Index: r1.Index, Roots: roots}
	hp1, err := MarshalHead(h1)
	if err != nil {
		t.Fatal(err)
	}
	v.Legacy.Head, _ = encryptVec(t, "head, version 1", hloc.Key, hloc.ID, hloc.Proof, hp1, lrnd)
	x1, err := r1.DecryptIndex(blockData(blocks1), vecBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	want1 := old.Clone()
	for i := range want1.Files {
		for j := range want1.Files[i].Chunks {
			want1.Files[i].Chunks[j].Mark = 0 // format 1 has no marks
		}
	}
	if !reflect.DeepEqual(x1.Files, want1.Files) {
		t.Fatal("the format 1 index does not read back")
	}

	// Capability strings.
	cs := capab.String()
	for _, in := range []string{
		cs,
		" " + cs + "\n",
		"blind2:" + cs[len("blind1:"):],
		cs[:len(cs)-1],
		cs + "A",
		cs[:len(cs)-1] + "=",
	} {
		c, err := ParseCapability(in)
		if err == nil && c != capab {
			t.Fatalf("capability %q parses to another", in)
		}
		v.Capability = append(v.Capability, vecCapabilityS{Input: in, Valid: err == nil})
	}
	return v
}

func blockData(bs []EncryptedBlock) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = b.Data
	}
	return out
}

func vecInflate(t *testing.T, deflated []byte) []byte {
	t.Helper()
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	v := buildVectors(t)
	got, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if goldenfile.Update() {
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (go test ./client/format -run TestVectors -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the code computes: the format changed, or the file was edited (regenerate with -update only if the format change is intended)", vectorsPath)
	}

	// The legacy head decodes.
	hl, err := UnmarshalHead(v.Legacy.Head.Payload)
	if err != nil || hl.Version != HeadV1 {
		t.Fatalf("the version 1 head does not decode: %v", err)
	}
}
