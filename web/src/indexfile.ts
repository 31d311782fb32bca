// The index of docs/spec.md §9: the files, their format 2 leaves and dirs,
// Padmé padding, the format 1 blob (read only), the tree a writer keeps
// (Tree.update, which shapes updates as the Go client does so that the
// server sees the same block counts), and the three-way merge of §12.4.
// The Go twin is the indexfile package.
import { compareBytes, concat, DecodeError, equal, fromUTF8, hex, Reader, toUTF8, uvarintLen, Writer } from "./bytes.js";
import { BlindError, tampered } from "./errors.js";
import { ETAG_SIZE, MAX_INLINE, type Ref, validID } from "./format.js";

export const MAX_NAME_LEN = 4096;
export const MAX_DECODED_SIZE = 1 << 30;
const FORMAT_TREE = 2;
const KIND_LEAF = 1;
const KIND_DIR = 2;
const KIND_DIR_RENEWED = 3;
const FLAG_INLINE = 1;
const FLAG_KEY_SHARED = 2;
const REF_LEN = 32;
const CHUNK_LEN2 = REF_LEN + 1 + 32 + 8;
const MIN_FILE_LEN2 = 8 + 32 + 32 + 2;

export interface Chunk extends Ref {
  size: number; // plaintext bytes, ≥ 1
  hash: Uint8Array; // SHA-256 of the plaintext
  mark: bigint; // gear hash of its last 64 bytes (§10.3)
}

export interface FileEntry {
  name: string;
  size: number;
  mode: number; // permission bits
  mtimeSec: number;
  mtimeNsec: number;
  renewed: number;
  hash: Uint8Array;
  key: Uint8Array;
  keyShared: boolean;
  inline?: Uint8Array | undefined; // non-empty, or undefined
  chunks: Chunk[];
  manifest: Ref[];
}

export interface Index {
  generation: number;
  renewed: number;
  files: FileEntry[];
}

function corrupt(why: string): BlindError {
  return tampered("the account's index is malformed: " + why);
}

/** Byte order of the UTF-8 forms (= code point order), as Go compares strings. */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  let x = a.charCodeAt(i);
  let y = b.charCodeAt(i);
  // Surrogates stand for code points above U+FFFF: move them above U+E000–U+FFFF.
  if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000;
  if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000;
  return x - y;
}

/** Why name is not a valid file name (spec §9.1), or undefined if it is. */
export function nameProblem(name: string): string | undefined {
  const b = toUTF8(name);
  if (b.length === 0 || b.length > MAX_NAME_LEN) return `length must be 1 to ${MAX_NAME_LEN} bytes`;
  if (fromUTF8(b) !== name) return "not valid UTF-8";
  for (const c of b) {
    if (c < 0x20 || c === 0x7f || c === 0x5c) return "contains a control character or backslash";
  }
  for (const el of name.split("/")) {
    if (el === "" || el === "." || el === "..") return 'must be a relative path without empty, "." or ".." elements';
  }
  return undefined;
}

export function checkName(name: string): void {
  const p = nameProblem(name);
  if (p) throw new BlindError("invalid", `bad file name ${JSON.stringify(name)}: ${p}`);
}

function validateFile(f: FileEntry): void {
  const p = nameProblem(f.name);
  if (p) throw corrupt(`bad file name: ${p}`);
  if (f.mode & ~0o777) throw corrupt(`${JSON.stringify(f.name)}: mode is not permission bits only`);
  if (f.key.every((x) => x === 0)) throw corrupt(`${JSON.stringify(f.name)}: file key is zero`);
  const inl = f.inline?.length ?? 0;
  if (inl > 0) {
    if (f.chunks.length > 0 || inl !== f.size) throw corrupt(`${JSON.stringify(f.name)}: inline content with chunks, or of another size`);
    if (inl > MAX_INLINE) throw corrupt(`${JSON.stringify(f.name)}: too much inline content`);
  }
  let sum = inl;
  for (const c of f.chunks) {
    if (c.size === 0) throw corrupt(`${JSON.stringify(f.name)}: empty chunk`);
    if (!validID(c.id)) throw corrupt(`${JSON.stringify(f.name)}: chunk id`);
    sum += c.size;
  }
  if (sum !== f.size) throw corrupt(`${JSON.stringify(f.name)}: chunks hold ${sum} bytes, file size is ${f.size}`);
  for (const r of f.manifest) if (!validID(r.id)) throw corrupt(`${JSON.stringify(f.name)}: manifest id`);
}

function blockingDir(name: string, names: Set<string>): string | undefined {
  for (let i = name.indexOf("/"); i >= 0; i = name.indexOf("/", i + 1)) {
    if (names.has(name.slice(0, i))) return name.slice(0, i);
  }
  return undefined;
}

export function validateIndex(x: Index): void {
  for (let i = 0; i < x.files.length; i++) {
    validateFile(x.files[i]!);
    if (i > 0) {
      const c = compareNames(x.files[i - 1]!.name, x.files[i]!.name);
      if (c === 0) throw corrupt(`duplicate file name ${JSON.stringify(x.files[i]!.name)}`);
      if (c > 0) throw corrupt("files are not sorted by name");
    }
  }
  const names = new Set(x.files.map((f) => f.name));
  for (const f of x.files) {
    const d = blockingDir(f.name, names);
    if (d !== undefined) throw corrupt(`${JSON.stringify(d)} is both a file and a directory`);
  }
}

export function cloneFile(f: FileEntry): FileEntry {
  return { ...f, chunks: f.chunks.slice(), manifest: f.manifest.slice(), inline: f.inline };
}

export function cloneIndex(x: Index): Index {
  return { generation: x.generation, renewed: x.renewed, files: x.files.map(cloneFile) };
}

function search(files: FileEntry[], name: string): [number, boolean] {
  let lo = 0;
  let hi = files.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (compareNames(files[m]!.name, name) < 0) lo = m + 1;
    else hi = m;
  }
  return [lo, lo < files.length && files[lo]!.name === name];
}

export function lookup(x: Index, name: string): FileEntry | undefined {
  const [i, ok] = search(x.files, name);
  return ok ? x.files[i] : undefined;
}

/** Adds or replaces f (Index.Put): refuses a name that is, or is under, another file. */
export function putFile(x: Index, f: FileEntry): void {
  validateFile(f);
  const [i, ok] = search(x.files, f.name);
  if (ok) {
    x.files[i] = f;
    return;
  }
  const names = new Set(x.files.map((g) => g.name));
  const d = blockingDir(f.name, names);
  if (d !== undefined) throw new BlindError("conflict", `bad file name: ${JSON.stringify(d)} is a file`);
  const [j] = search(x.files, f.name + "/");
  if (j < x.files.length && x.files[j]!.name.startsWith(f.name + "/")) {
    throw new BlindError("conflict", `bad file name: ${JSON.stringify(f.name)} is a directory`);
  }
  x.files.splice(i, 0, f);
}

export function removeFile(x: Index, name: string): boolean {
  const [i, ok] = search(x.files, name);
  if (ok) x.files.splice(i, 1);
  return ok;
}

export function renameFile(x: Index, from: string, to: string): void {
  const [i, ok] = search(x.files, from);
  if (!ok) throw new BlindError("not found", `no file ${JSON.stringify(from)} in the account`);
  if (lookup(x, to)) throw new BlindError("conflict", `a file ${JSON.stringify(to)} already exists`);
  const moved = { ...x.files[i]!, name: to };
  const rest: Index = { ...x, files: x.files.filter((_, k) => k !== i) };
  putFile(rest, moved);
  x.files = rest.files;
}

export function refsOf(f: FileEntry): Ref[] {
  return [...f.chunks.map((c) => ({ id: c.id, etag: c.etag })), ...f.manifest];
}

/** The blocks old refers to and cur does not, sorted by ID (indexfile.Unreferenced). */
export function unreferenced(old: Index, cur: Index): Ref[] {
  if (old === cur) return []; // an update that needed no merge: nothing to walk
  const keep = new Set<string>();
  for (const f of cur.files) for (const r of refsOf(f)) keep.add(hex(r.id));
  const seen = new Set<string>();
  const out: Ref[] = [];
  for (const f of old.files) {
    for (const r of refsOf(f)) {
      const k = hex(r.id);
      if (keep.has(k) || seen.has(k)) continue;
      seen.add(k);
      out.push(r);
    }
  }
  return out.sort((a, b) => compareBytes(a.id, b.id));
}

function refsEqual(a: Ref[], b: Ref[]): boolean {
  return a.length === b.length && a.every((r, i) => equal(r.id, b[i]!.id) && equal(r.etag, b[i]!.etag));
}

function chunksEqual(a: Chunk[], b: Chunk[]): boolean {
  return (
    a.length === b.length &&
    a.every((c, i) => {
      const d = b[i]!;
      return equal(c.id, d.id) && equal(c.etag, d.etag) && c.size === d.size && equal(c.hash, d.hash) && c.mark === d.mark;
    })
  );
}

/** Every field but renewed (indexfile.sameVersion). */
export function sameVersion(a: FileEntry | undefined, b: FileEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.name === b.name &&
    a.size === b.size &&
    a.mode === b.mode &&
    a.mtimeSec === b.mtimeSec &&
    a.mtimeNsec === b.mtimeNsec &&
    equal(a.hash, b.hash) &&
    equal(a.key, b.key) &&
    a.keyShared === b.keyShared &&
    equal(a.inline ?? new Uint8Array(), b.inline ?? new Uint8Array()) &&
    chunksEqual(a.chunks, b.chunks) &&
    refsEqual(a.manifest, b.manifest)
  );
}

// --- format 2 leaves and dirs (§9.2, §9.3) ---

function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function appendFile2(w: Writer, prev: Uint8Array, f: FileEntry): Uint8Array {
  const name = toUTF8(f.name);
  const p = commonPrefix(prev, name);
  w.uvarint(p).uvarint(name.length - p).bytes(name.subarray(p));
  w.uvarint(f.size).uvarint(f.mode).varint(f.mtimeSec).uvarint(f.mtimeNsec).uvarint(f.renewed);
  const inline = (f.inline?.length ?? 0) > 0;
  w.byte((inline ? FLAG_INLINE : 0) | (f.keyShared ? FLAG_KEY_SHARED : 0));
  w.bytes(f.hash).bytes(f.key);
  if (inline) {
    w.bytes(f.inline!);
  } else {
    w.uvarint(f.chunks.length);
    for (const c of f.chunks) w.bytes(c.id).bytes(c.etag).uvarint(c.size).bytes(c.hash).u64(c.mark);
  }
  w.uvarint(f.manifest.length);
  for (const r of f.manifest) w.bytes(r.id).bytes(r.etag);
  return name;
}

function fileEntryLen(prev: Uint8Array, f: FileEntry): number {
  const w = new Writer();
  appendFile2(w, prev, f);
  return w.len;
}

export function encodeLeaf(files: FileEntry[]): Uint8Array {
  const w = new Writer(64 + files.length * 160).byte(FORMAT_TREE).byte(KIND_LEAF).uvarint(files.length);
  let prev: Uint8Array = new Uint8Array();
  for (const f of files) prev = appendFile2(w, prev, f);
  return w.done();
}

/** EncodeLeaf with the checks of the Go API (valid, sorted files). */
export function encodeLeafChecked(files: FileEntry[]): Uint8Array {
  files.forEach((f, i) => {
    validateFile(f);
    if (i > 0 && compareNames(files[i - 1]!.name, f.name) >= 0) throw corrupt("leaf files are not sorted");
  });
  return encodeLeaf(files);
}

export const EMPTY_LEAF = encodeLeaf([]);

function header(r: Reader, ...kinds: number[]): number {
  const b = r.bytes(2);
  if (b[0] !== FORMAT_TREE || !kinds.includes(b[1]!)) throw corrupt(`format ${b[0]} node ${b[1]}`);
  return b[1]!;
}

function count(r: Reader, minLen: number): number {
  const n = r.uvarint();
  if (n > BigInt(Math.floor(r.left / minLen))) throw new DecodeError("count exceeds the remaining bytes");
  return Number(n);
}

export function decodeLeaf(b: Uint8Array): FileEntry[] {
  const r = new Reader(b);
  try {
    header(r, KIND_LEAF);
    const n = count(r, MIN_FILE_LEN2);
    const files: FileEntry[] = [];
    let prev: Uint8Array = new Uint8Array();
    for (let i = 0; i < n; i++) {
      const p = r.num();
      const sl = r.num();
      const suffix = r.bytes(sl);
      if (p > prev.length) throw corrupt("name prefix beyond the previous name");
      const nameBytes = new Uint8Array(p + suffix.length);
      nameBytes.set(prev.subarray(0, p));
      nameBytes.set(suffix, p);
      if (i > 0 && commonPrefix(prev, nameBytes) !== p) throw corrupt("name prefix is not the longest common one");
      const name = fromUTF8(nameBytes);
      if (name === undefined) throw corrupt("bad file name: not valid UTF-8");
      const size = r.num();
      const mode = r.uvarint();
      if (mode > 0xffffffffn) throw corrupt("mode out of range");
      const sec = r.varint();
      const nsec = r.uvarint();
      if (nsec >= 1000000000n) throw corrupt("nanoseconds out of range");
      if (sec > BigInt(Number.MAX_SAFE_INTEGER) || sec < -BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt("time out of range");
      const renewed = r.num();
      const flags = r.byte();
      const hash = r.bytes(32).slice();
      const key = r.bytes(32).slice();
      if (flags & ~(FLAG_INLINE | FLAG_KEY_SHARED)) throw corrupt(`unknown flags ${flags}`);
      const f: FileEntry = {
        name,
        size,
        mode: Number(mode),
        mtimeSec: Number(sec),
        mtimeNsec: Number(nsec),
        renewed,
        hash,
        key,
        keyShared: (flags & FLAG_KEY_SHARED) !== 0,
        inline: undefined,
        chunks: [],
        manifest: [],
      };
      if (flags & FLAG_INLINE) {
        if (size === 0 || size > MAX_INLINE) throw corrupt(`inline content of ${size} bytes`);
        f.inline = r.bytes(size).slice();
      } else {
        const nc = count(r, CHUNK_LEN2);
        for (let j = 0; j < nc; j++) {
          const id = r.bytes(16).slice();
          const etag = r.bytes(ETAG_SIZE).slice();
          const csize = r.uvarint();
          if (csize > 0xffffffffn) throw corrupt("chunk size out of range");
          const chash = r.bytes(32).slice();
          const mark = r.u64();
          f.chunks.push({ id, etag, size: Number(csize), hash: chash, mark });
        }
      }
      const nm = count(r, REF_LEN);
      for (let j = 0; j < nm; j++) f.manifest.push({ id: r.bytes(16).slice(), etag: r.bytes(ETAG_SIZE).slice() });
      validateFile(f);
      if (i > 0 && compareBytes(prev, nameBytes) >= 0) throw corrupt("leaf files are not sorted");
      prev = nameBytes;
      files.push(f);
    }
    if (r.left !== 0) throw corrupt(`${r.left} bytes after the last file`);
    return files;
  } catch (e) {
    if (e instanceof DecodeError) throw corrupt(e.message);
    throw e;
  }
}

export interface LeafRef {
  len: number;
  blocks: Ref[];
  files: number;
}

export interface Dir {
  renewed: number;
  leaves: LeafRef[];
}

export interface DirRef {
  block: Ref;
  leaves: LeafRef[];
}

export interface Tree {
  dirs: DirRef[];
  renewed: number;
}

function blocksFor(n: number, payload: number): number {
  return Math.ceil(n / payload);
}

export function encodeDir(d: Dir, payload: number): Uint8Array {
  const out = new Writer().byte(FORMAT_TREE);
  if (d.renewed !== 0) out.byte(KIND_DIR_RENEWED).uvarint(d.renewed);
  else out.byte(KIND_DIR);
  out.uvarint(d.leaves.length);
  for (const l of d.leaves) {
    if (l.len <= 0 || l.blocks.length !== blocksFor(l.len, payload)) throw new BlindError("other", `a leaf of ${l.len} bytes in ${l.blocks.length} blocks`);
    out.uvarint(l.len);
    for (const r of l.blocks) out.bytes(r.id).bytes(r.etag);
  }
  return out.done();
}

export function decodeDir(b: Uint8Array, payload: number): Dir {
  const r = new Reader(b);
  try {
    let renewed = 0;
    if (header(r, KIND_DIR, KIND_DIR_RENEWED) === KIND_DIR_RENEWED) {
      renewed = r.num();
      if (renewed === 0) throw corrupt("a dir with a renewal of zero");
    }
    const n = count(r, 1 + REF_LEN);
    const leaves: LeafRef[] = [];
    for (let i = 0; i < n; i++) {
      const len = r.uvarint();
      if (len === 0n || len > BigInt(MAX_DECODED_SIZE)) throw corrupt("leaf length out of range");
      const nb = blocksFor(Number(len), payload);
      if (nb > Math.floor(r.left / REF_LEN)) throw corrupt("truncated");
      const blocks: Ref[] = [];
      for (let j = 0; j < nb; j++) {
        const ref = { id: r.bytes(16).slice(), etag: r.bytes(ETAG_SIZE).slice() };
        if (!validID(ref.id)) throw corrupt("leaf block id");
        blocks.push(ref);
      }
      leaves.push({ len: Number(len), blocks, files: 0 });
    }
    if (r.left !== 0) throw corrupt(`${r.left} bytes after the last leaf`);
    return { renewed, leaves };
  } catch (e) {
    if (e instanceof DecodeError) throw corrupt(e.message);
    throw e;
  }
}

export function splitLeaf(enc: Uint8Array, payload: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < enc.length; o += payload) out.push(enc.subarray(o, Math.min(enc.length, o + payload)));
  return out;
}

export function joinLeaf(payloads: Uint8Array[], n: number, payload: number): Uint8Array {
  if (payloads.length !== blocksFor(n, payload)) throw corrupt(`a leaf of ${n} bytes in ${payloads.length} blocks`);
  const out = new Uint8Array(n);
  payloads.forEach((p, i) => {
    const want = i === payloads.length - 1 ? n - payload * (payloads.length - 1) : payload;
    if (p.length !== want) throw corrupt(`leaf block ${i} holds ${p.length} bytes, want ${want}`);
    out.set(p, i * payload);
  });
  return out;
}

export function treeBlocks(t: Tree): Ref[] {
  const out = t.dirs.map((d) => d.block);
  for (const d of t.dirs) for (const l of d.leaves) out.push(...l.blocks);
  return out;
}

export function treeCount(t: Tree): number {
  let n = t.dirs.length;
  for (const d of t.dirs) for (const l of d.leaves) n += l.blocks.length;
  return n;
}

export function assemble(generation: number, dirBlocks: Ref[], dirs: Dir[], leafFiles: FileEntry[][][]): { index: Index; tree: Tree } {
  const x: Index = { generation, renewed: dirs[0]?.renewed ?? 0, files: [] };
  const t: Tree = { dirs: [], renewed: x.renewed };
  const seen = new Set<string>();
  dirs.forEach((d, i) => {
    if (i > 0 && d.renewed !== 0) throw corrupt(`dir ${i} records a renewal, which only the first may`);
    if (leafFiles[i]!.length !== d.leaves.length) throw corrupt(`dir ${i} lists ${d.leaves.length} leaves`);
    if (d.leaves.length === 0) throw corrupt(`dir ${i} lists no leaf`);
    for (const r of [dirBlocks[i]!, ...d.leaves.flatMap((l) => l.blocks)]) {
      const k = hex(r.id);
      if (seen.has(k)) throw corrupt("a block is listed twice");
      seen.add(k);
    }
    const leaves = d.leaves.map((l, j) => ({ ...l, files: leafFiles[i]![j]!.length }));
    for (const fs of leafFiles[i]!) x.files.push(...fs);
    t.dirs.push({ block: dirBlocks[i]!, leaves });
  });
  validateIndex(x);
  return { index: x, tree: t };
}

// --- Padmé and format 1 padding (§9.5) ---

export function padme(n: number): number {
  if (n < 2) return n;
  const e = n.toString(2).length - 1; // ⌊log2 n⌋
  const s = e.toString(2).length; // ⌊log2 e⌋ + 1
  const mask = 2 ** (e - s) - 1;
  // (n + mask) & ~mask without 32-bit truncation
  return Math.floor((n + mask) / (mask + 1)) * (mask + 1);
}

export function paddedBlocks(n: number, payload: number): number {
  return padme(Math.ceil(padme(n) / payload));
}

export function splitPadded(encoded: Uint8Array, payload: number): Uint8Array[] {
  const nb = paddedBlocks(encoded.length, payload);
  const padded = new Uint8Array(nb * payload);
  padded.set(encoded);
  const out: Uint8Array[] = [];
  for (let i = 0; i < nb; i++) out.push(padded.subarray(i * payload, (i + 1) * payload));
  return out;
}

export function joinPadded(payloads: Uint8Array[], n: number): Uint8Array {
  const total = payloads.reduce((s, p) => s + p.length, 0);
  if (n < 0 || n > total) throw corrupt(`index length ${n} exceeds the ${total} bytes of its blocks`);
  const out = new Uint8Array(n);
  let o = 0;
  for (let p of payloads) {
    const rest = n - o;
    if (rest < p.length) {
      for (let i = rest; i < p.length; i++) if (p[i] !== 0) throw corrupt("index padding is not zero");
      p = p.subarray(0, rest);
    }
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// --- format 1 (§9.6, read only) ---

async function inflateRaw(b: Uint8Array, limit: number): Promise<Uint8Array> {
  const ds = new DecompressionStream("deflate-raw");
  const writer = ds.writable.getWriter();
  const done = writer.write(b as Uint8Array<ArrayBuffer>).then(() => writer.close());
  done.catch(() => {});
  const reader = ds.readable.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    n += value.length;
    if (n > limit) {
      await reader.cancel();
      throw corrupt(`inflates beyond ${limit} bytes`);
    }
    parts.push(value);
  }
  await done;
  return concat(...parts);
}

export async function decodeV1(b: Uint8Array): Promise<Index> {
  if (b.length === 0) throw corrupt("empty");
  if (b[0] !== 1) throw corrupt(`unsupported index version ${b[0]}`);
  let body: Uint8Array;
  try {
    body = await inflateRaw(b.subarray(1), MAX_DECODED_SIZE);
  } catch (e) {
    if (e instanceof BlindError) throw e;
    throw corrupt("decompressing: " + (e instanceof Error ? e.message : String(e)));
  }
  return decodeV1Body(body);
}

export function decodeV1Body(body: Uint8Array): Index {
  const r = new Reader(body);
  try {
    const generation = Number(r.u64());
    const n = r.u32();
    const minFileLen = 2 + 1 + 8 + 4 + 8 + 4 + 8 + 32 + 32 + 4 + 4;
    if (n > Math.floor(r.left / minFileLen)) throw corrupt("count exceeds the remaining bytes");
    const files: FileEntry[] = [];
    for (let i = 0; i < n; i++) {
      const nameLen = r.u16();
      const name = fromUTF8(r.bytes(nameLen));
      if (name === undefined) throw corrupt("bad file name: not valid UTF-8");
      const size = Number(r.u64());
      const mode = r.u32();
      const sec = Number(r.i64());
      const nsec = r.u32();
      if (nsec >= 1e9) throw corrupt("nanoseconds out of range");
      const renewed = Number(r.u64());
      const hash = r.bytes(32).slice();
      const key = r.bytes(32).slice();
      const f: FileEntry = { name, size, mode, mtimeSec: sec, mtimeNsec: nsec, renewed, hash, key, keyShared: false, inline: undefined, chunks: [], manifest: [] };
      const nc = r.u32();
      if (nc > Math.floor(r.left / 68)) throw corrupt("count exceeds the remaining bytes");
      for (let j = 0; j < nc; j++) {
        f.chunks.push({ id: r.bytes(16).slice(), etag: r.bytes(16).slice(), size: r.u32(), hash: r.bytes(32).slice(), mark: 0n });
      }
      const nm = r.u32();
      if (nm > Math.floor(r.left / 32)) throw corrupt("count exceeds the remaining bytes");
      for (let j = 0; j < nm; j++) f.manifest.push({ id: r.bytes(16).slice(), etag: r.bytes(16).slice() });
      files.push(f);
    }
    if (r.left !== 0) throw corrupt(`${r.left} bytes after the last file`);
    const x = { generation, renewed: 0, files };
    validateIndex(x);
    return x;
  } catch (e) {
    if (e instanceof DecodeError) throw corrupt(e.message);
    throw e;
  }
}

// --- writing a tree (§9.4; indexfile.Tree.Update) ---

export type EncryptFunc = (payload: Uint8Array) => Ref;

interface Slot {
  dir: number;
  leaf: { len: number; files: number; blocks: Ref[] | undefined }; // blocks: undefined until encrypted
  enc?: Uint8Array | undefined;
  fresh: boolean;
}

interface Piece {
  files: FileEntry[];
  enc: Uint8Array;
}

function pack(files: FileEntry[], payload: number): Piece[] {
  const out: Piece[] = [];
  let start = 0;
  let size = 0;
  const empty = new Uint8Array();
  for (let i = 0; i < files.length; i++) {
    const prev = i > start ? toUTF8(files[i - 1]!.name) : empty;
    const e = fileEntryLen(prev, files[i]!);
    const n = i - start;
    if (n > 0 && 2 + uvarintLen(n + 1) + size + e > payload) {
      const fs = files.slice(start, i);
      out.push({ files: fs, enc: encodeLeaf(fs) });
      start = i;
      size = fileEntryLen(empty, files[i]!);
      continue;
    }
    size += e;
  }
  const fs = files.slice(start);
  out.push({ files: fs, enc: encodeLeaf(fs) });
  return out;
}

interface DirGroup {
  from: number;
  split: boolean;
  leaves: LeafRef[];
}

function dirHeaderMax(n: number): number {
  return 2 + 10 + uvarintLen(n);
}

function groupDirs(slots: Slot[], payload: number): DirGroup[] {
  const out: DirGroup[] = [];
  for (let i = 0; i < slots.length; ) {
    let j = i;
    while (j < slots.length && slots[j]!.dir === slots[i]!.dir) j++;
    const from = slots[i]!.dir;
    let size = dirHeaderMax(j - i);
    let g: DirGroup = { from, split: false, leaves: [] };
    for (const s of slots.slice(i, j)) {
      const l: LeafRef = { len: s.leaf.len, files: s.leaf.files, blocks: s.leaf.blocks ?? new Array<Ref>(blocksFor(s.leaf.len, payload)) };
      const e = uvarintLen(l.len) + REF_LEN * l.blocks.length;
      if (g.leaves.length > 0 && size + e > payload) {
        out.push(g);
        g = { from, split: true, leaves: [] };
        size = dirHeaderMax(j - i);
      }
      g.leaves.push(l);
      size += e;
    }
    if (out.length > 0 && out[out.length - 1]!.from === from && from >= 0) {
      g.split = true;
      out[out.length - 1]!.split = true;
    }
    out.push(g);
    i = j;
  }
  return out;
}

function sameLeaves(a: LeafRef[], b: LeafRef[]): boolean {
  return a.length === b.length && a.every((x, i) => x.len === b[i]!.len && x.files === b[i]!.files && refsEqual(x.blocks, b[i]!.blocks));
}

function sameFiles(a: FileEntry[], b: FileEntry[]): boolean {
  return a.length === b.length && a.every((x, i) => sameVersion(x, b[i]) && x.renewed === b[i]!.renewed);
}

function searchFrom(files: FileEntry[], bound: string): number {
  return search(files, bound)[0];
}

/**
 * The tree of next, written from t (which holds old): the new tree and the
 * blocks of t it no longer uses. New blocks are made by encrypt, in the
 * order the Go client makes them.
 */
export function updateTree(t: Tree, old: Index, next: Index, payload: number, encrypt: EncryptFunc): { tree: Tree; obsolete: Ref[] } {
  if (payload < 512) throw new BlindError("invalid", `payload of ${payload} bytes is too small for an index`);
  validateIndex(next);
  interface OldLeaf {
    dir: number;
    leaf: LeafRef;
    files: FileEntry[];
  }
  const data: OldLeaf[] = [];
  const pads: Slot[] = [];
  let off = 0;
  t.dirs.forEach((d, i) => {
    for (const l of d.leaves) {
      if (l.files === 0) {
        pads.push({ dir: i, leaf: l, fresh: false });
        continue;
      }
      if (off + l.files > old.files.length) throw new BlindError("other", "the tree does not hold the index it is updated from");
      data.push({ dir: i, leaf: l, files: old.files.slice(off, off + l.files) });
      off += l.files;
    }
  });
  if (off !== old.files.length) throw new BlindError("other", "the tree does not hold the index it is updated from");
  const lastDir = t.dirs.length - 1;
  if (data.length === 0) data.push({ dir: lastDir < 0 ? -1 : Math.max(0, lastDir), leaf: { len: 0, blocks: [], files: 0 }, files: [] });

  const obsolete: Ref[] = [];
  const out: Slot[] = [];
  let carry: FileEntry[] | undefined;
  let pos = 0;
  data.forEach((ol, k) => {
    let end = next.files.length;
    if (k + 1 < data.length) end = pos + searchFrom(next.files.slice(pos), data[k + 1]!.files[0]!.name);
    let files = next.files.slice(pos, end);
    pos = end;
    if (carry === undefined && ol.leaf.files > 0 && sameFiles(ol.files, files)) {
      out.push({ dir: ol.dir, leaf: ol.leaf, fresh: false });
      return;
    }
    obsolete.push(...ol.leaf.blocks);
    const received = carry !== undefined;
    if (received) {
      files = [...carry!, ...files];
      carry = undefined;
    }
    if (files.length === 0) return;
    let pieces = pack(files, payload);
    const last = pieces[pieces.length - 1]!;
    if (!received && k + 1 < data.length && last.enc.length < Math.floor(payload / 4)) {
      carry = last.files;
      pieces = pieces.slice(0, -1);
    }
    for (const p of pieces) out.push({ dir: ol.dir, enc: p.enc, fresh: true, leaf: { len: p.enc.length, files: p.files.length, blocks: undefined } });
  });
  if (carry !== undefined) {
    const enc = encodeLeaf(carry);
    out.push({ dir: data[data.length - 1]!.dir, enc, fresh: true, leaf: { len: enc.length, files: carry.length, blocks: undefined } });
  }
  let dataBlocks = 0;
  for (const s of out) dataBlocks += blocksFor(s.leaf.len, payload);

  let padDir = lastDir;
  if (out.length > 0) padDir = Math.max(padDir, out[out.length - 1]!.dir);
  const withPads = (n: number): Slot[] => {
    const s: Slot[] = out.map((x) => ({ ...x, leaf: { ...x.leaf } }));
    for (let i = 0; i < n; i++) {
      if (i < pads.length) s.push({ ...pads[i]!, leaf: { ...pads[i]!.leaf } });
      else s.push({ dir: padDir, fresh: true, leaf: { len: EMPTY_LEAF.length, files: 0, blocks: undefined } });
    }
    // Array.prototype.sort is stable.
    return s.sort((a, b) => a.dir - b.dir);
  };
  const countOf = (n: number) => dataBlocks + n + groupDirs(withPads(n), payload).length;
  let npads = 0;
  if (out.length > 0) {
    const need = countOf(0);
    let target = padme(need);
    const cur = treeCount(t);
    if (cur >= need && padme(cur) === cur && cur <= 2 * need) target = cur;
    for (;;) {
      let n = target - need;
      while (n >= 0 && countOf(n) > target) n--;
      if (n >= 0 && countOf(n) === target) {
        npads = n;
        break;
      }
      target = padme(target + 1);
    }
  }
  for (const p of pads.slice(Math.min(npads, pads.length))) obsolete.push(...p.leaf.blocks!);
  const all = withPads(npads);
  for (const s of all) {
    if (!s.fresh) continue;
    const enc = s.enc ?? EMPTY_LEAF;
    s.leaf.blocks = splitLeaf(enc, payload).map((p) => encrypt(p));
  }
  const nt: Tree = { dirs: [], renewed: 0 };
  const usedOld = new Set<number>();
  groupDirs(all, payload).forEach((g, gi) => {
    let renewed = 0;
    if (gi === 0) {
      renewed = next.renewed;
      nt.renewed = next.renewed;
    }
    const dirRenewed = g.from === 0 ? t.renewed : 0;
    if (g.from >= 0 && !g.split && sameLeaves(t.dirs[g.from]!.leaves, g.leaves) && dirRenewed === renewed) {
      nt.dirs.push(t.dirs[g.from]!);
      usedOld.add(g.from);
      return;
    }
    const enc = encodeDir({ renewed, leaves: g.leaves }, payload);
    nt.dirs.push({ block: encrypt(enc), leaves: g.leaves });
  });
  t.dirs.forEach((d, i) => {
    if (!usedOld.has(i)) obsolete.push(d.block);
  });
  return { tree: nt, obsolete };
}

// --- merging (§12.4; indexfile.Merge) ---

const MAX_ELEM_LEN = 255;

function after(a: FileEntry, b: FileEntry): boolean {
  return a.mtimeSec > b.mtimeSec || (a.mtimeSec === b.mtimeSec && a.mtimeNsec > b.mtimeNsec);
}

function truncateUTF8(s: Uint8Array, n: number): Uint8Array {
  if (n <= 0) return new Uint8Array();
  if (s.length <= n) return s;
  while (n > 0 && (s[n]! & 0xc0) === 0x80) n--;
  return s.subarray(0, n);
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

function conflictName(name: string, f: FileEntry, taken: Set<string>): string {
  const slash = name.lastIndexOf("/");
  const dir = toUTF8(name.slice(0, slash + 1));
  const elemStr = name.slice(slash + 1);
  const elem = toUTF8(elemStr);
  const dot = elemStr.lastIndexOf(".");
  let extStr = dot >= 0 ? elemStr.slice(dot) : "";
  if (extStr === elemStr || extStr === ".") extStr = "";
  const ext = toUTF8(extStr);
  const stem = elem.subarray(0, elem.length - ext.length);
  const d0 = new Date(f.mtimeSec * 1000);
  const stamp = `.conflict-${d0.getUTCFullYear()}${pad2(d0.getUTCMonth() + 1)}${pad2(d0.getUTCDate())}-${pad2(d0.getUTCHours())}${pad2(d0.getUTCMinutes())}${pad2(d0.getUTCSeconds())}`;
  const dec = new TextDecoder();
  for (let i = 1; ; i++) {
    const suffix = toUTF8(i > 1 ? `${stamp}-${i}` : stamp);
    let d = dir;
    let x = ext;
    if (d.length + 1 + suffix.length > MAX_NAME_LEN) d = new Uint8Array();
    if (d.length + 1 + suffix.length + x.length > MAX_NAME_LEN) x = new Uint8Array();
    let limit = MAX_NAME_LEN - d.length;
    if (elem.length <= MAX_ELEM_LEN) limit = Math.min(limit, MAX_ELEM_LEN);
    const c = dec.decode(d) + dec.decode(truncateUTF8(stem, limit - suffix.length - x.length)) + dec.decode(suffix) + dec.decode(x);
    if (taken.has(c)) continue;
    let isDir = false;
    for (const n of taken) {
      if (n.startsWith(c + "/")) {
        isDir = true;
        break;
      }
    }
    if (isDir) continue;
    return c;
  }
}

export function merge(base: Index | undefined, ours: Index, theirs: Index): Index {
  const byName = (x: Index | undefined) => new Map((x?.files ?? []).map((f) => [f.name, f] as const));
  const b = byName(base);
  const o = byName(ours);
  const t = byName(theirs);
  const names = [...new Set([...b.keys(), ...o.keys(), ...t.keys()])].sort(compareNames);
  const out: Index = { generation: Math.max(ours.generation, theirs.generation) + 1, renewed: Math.min(ours.renewed, theirs.renewed), files: [] };
  const losers: FileEntry[] = [];
  for (const n of names) {
    const bf = b.get(n);
    const of = o.get(n);
    const tf = t.get(n);
    if (sameVersion(of, tf)) {
      if (of) out.files.push({ ...cloneFile(of), renewed: Math.max(of.renewed, tf!.renewed) });
    } else if (sameVersion(of, bf)) {
      if (tf) out.files.push(cloneFile(tf));
    } else if (sameVersion(tf, bf)) {
      if (of) out.files.push(cloneFile(of));
    } else if (!of) {
      out.files.push(cloneFile(tf!));
    } else if (!tf) {
      out.files.push(cloneFile(of));
    } else {
      let win = tf;
      let lose = of;
      if (after(of, tf)) {
        win = of;
        lose = tf;
      }
      out.files.push(cloneFile(win));
      losers.push(cloneFile(lose));
    }
  }
  const taken = new Set(out.files.map((f) => f.name));
  for (const f of losers) {
    f.name = conflictName(f.name, f, taken);
    taken.add(f.name);
    out.files.push(f);
  }
  const blockers = new Set<string>();
  for (const f of out.files) {
    const d = blockingDir(f.name, taken);
    if (d !== undefined) blockers.add(d);
  }
  for (const f of out.files) {
    if (blockers.has(f.name)) {
      taken.delete(f.name);
      f.name = conflictName(f.name, f, taken);
      taken.add(f.name);
    }
  }
  out.files.sort((a, b2) => compareNames(a.name, b2.name));
  return out;
}
