// The content-defined chunker of docs/spec.md §10.2 and §10.3: the per-account
// gear table from ChaCha8Rand, the cut rule, marks, and resynchronising on
// old marks after an edit so that unchanged content is cut where it was.
// The 64-bit gear hash runs on two uint32 halves (no BigInt in the loops).
import { chunkerSeed } from "./format.js";

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

function rotl(v: number, c: number): number {
  return ((v << c) | (v >>> (32 - c))) >>> 0;
}

function quarter(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  s[a] = s[a]! + s[b]!;
  s[d] = rotl(s[d]! ^ s[a]!, 16);
  s[c] = s[c]! + s[d]!;
  s[b] = rotl(s[b]! ^ s[c]!, 12);
  s[a] = s[a]! + s[b]!;
  s[d] = rotl(s[d]! ^ s[a]!, 8);
  s[c] = s[c]! + s[d]!;
  s[b] = rotl(s[b]! ^ s[c]!, 7);
}

/** The first count uint64 values of C2SP chacha8rand (Go's math/rand/v2.ChaCha8) from seed. */
export function chacha8rand(seed: Uint8Array, count: number): bigint[] {
  const dv = new DataView(seed.buffer, seed.byteOffset, 32);
  let key = Array.from({ length: 8 }, (_, i) => dv.getUint32(4 * i, true));
  const out: bigint[] = [];
  for (;;) {
    let buf: bigint[] = [];
    for (const c of [0, 4, 8, 12]) {
      const blocks: Uint32Array[] = [];
      for (let j = 0; j < 4; j++) {
        const s = new Uint32Array([...SIGMA, ...key, c + j, 0, 0, 0]);
        for (let r = 0; r < 4; r++) {
          quarter(s, 0, 4, 8, 12);
          quarter(s, 1, 5, 9, 13);
          quarter(s, 2, 6, 10, 14);
          quarter(s, 3, 7, 11, 15);
          quarter(s, 0, 5, 10, 15);
          quarter(s, 1, 6, 11, 12);
          quarter(s, 2, 7, 8, 13);
          quarter(s, 3, 4, 9, 14);
        }
        for (let w = 4; w < 12; w++) s[w] = s[w]! + key[w - 4]!;
        blocks.push(s);
      }
      buf = [];
      for (let k = 0; k < 32; k++) {
        const w = k >> 1;
        const j = 2 * (k % 2);
        buf.push(BigInt(blocks[j]![w]!) | (BigInt(blocks[j + 1]![w]!) << 32n));
      }
      out.push(...(c === 12 ? buf.slice(0, 28) : buf));
      if (out.length >= count) return out.slice(0, count);
    }
    key = [];
    for (const x of buf.slice(28, 32)) key.push(Number(x & 0xffffffffn), Number(x >> 32n));
  }
}

/**
 * The gear table, split into low and high 32-bit halves; slo and shi are
 * the same words read as signed (the hash loops below work in int32,
 * which the JIT keeps in registers: uint32 values above 2^31 are doubles).
 */
export interface GearTable {
  lo: Uint32Array;
  hi: Uint32Array;
  slo: Int32Array;
  shi: Int32Array;
}

export function gearTable(accountKey: Uint8Array): GearTable {
  const vals = chacha8rand(chunkerSeed(accountKey), 256);
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  vals.forEach((v, i) => {
    lo[i] = Number(v & 0xffffffffn);
    hi[i] = Number(v >> 32n);
  });
  return { lo, hi, slo: new Int32Array(lo.buffer), shi: new Int32Array(hi.buffer) };
}

export function tableValues(t: GearTable): bigint[] {
  return Array.from(t.lo, (lo, i) => (BigInt(t.hi[i]!) << 32n) | BigInt(lo));
}

export const GEAR_WINDOW = 64;
export const MAX_DRIFT = 8;

export function chunkMin(capacity: number): number {
  return capacity - Math.floor(capacity / 4);
}

// The 64-bit gear hash h = (h << 1) + G[x] on two int32 halves. The carry
// out of the low half's sum s + g is the top bit of
// (s & g) | ((s | g) & ~(s + g)): bit operations only, no unsigned
// compare (which would take the JIT's int32 values through doubles).
// Unsigned order of the halves is signed order of (v ^ 0x80000000).
// This loop is written out in each function below: a call per byte, or
// an object for the pair, costs more than the hash.

/** The gear hash of the last 64 bytes of chunk (all of it if shorter), from 0. */
export function markOf(chunk: Uint8Array, t: GearTable): bigint {
  let lo = 0;
  let hi = 0;
  const { slo: tl, shi: th } = t;
  for (let i = Math.max(0, chunk.length - GEAR_WINDOW); i < chunk.length; i++) {
    const x = chunk[i]!;
    const g = tl[x]!;
    const s = lo << 1;
    const l2 = (s + g) | 0;
    hi = ((hi << 1) + (lo >>> 31) + th[x]! + (((s & g) | ((s | g) & ~l2)) >>> 31)) | 0;
    lo = l2;
  }
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The cut position in b (of capacity bytes) by the rule of §10.2. */
export function cut(b: Uint8Array, min: number, t: GearTable): number {
  const { slo: tl, shi: th } = t;
  let lo = 0;
  let hi = 0;
  for (let i = min - GEAR_WINDOW; i < min; i++) {
    const x = b[i]!;
    const g = tl[x]!;
    const s = lo << 1;
    const l2 = (s + g) | 0;
    hi = ((hi << 1) + (lo >>> 31) + th[x]! + (((s & g) | ((s | g) & ~l2)) >>> 31)) | 0;
    lo = l2;
  }
  // The best hash so far, its halves flipped for signed compares.
  let bhi = hi ^ -0x80000000;
  let blo = lo ^ -0x80000000;
  let at = min;
  const n = b.length;
  for (let i = min; i < n; i++) {
    const x = b[i]!;
    const g = tl[x]!;
    const s = lo << 1;
    const l2 = (s + g) | 0;
    hi = ((hi << 1) + (lo >>> 31) + th[x]! + (((s & g) | ((s | g) & ~l2)) >>> 31)) | 0;
    lo = l2;
    const fh = hi ^ -0x80000000;
    if (fh >= bhi) {
      const fl = lo ^ -0x80000000;
      if (fh > bhi || fl >= blo) {
        bhi = fh;
        blo = fl;
        at = i + 1;
      }
    }
  }
  return at;
}

/** A set of old marks with a 64 Ki-bit prefilter on the low 16 bits; halves kept as int32. */
export class MarkSet {
  private bits = new Uint8Array(8192);
  private byLo = new Map<number, number[]>();
  size = 0;
  add(mark: bigint): void {
    const lo = Number(mark & 0xffffffffn) | 0;
    const hi = Number((mark >> 32n) & 0xffffffffn) | 0;
    const l16 = lo & 0xffff;
    this.bits[l16 >> 3]! |= 1 << (l16 & 7);
    const hs = this.byLo.get(lo);
    if (hs) hs.push(hi);
    else this.byLo.set(lo, [hi]);
    this.size++;
  }
  /** Whether the mark of halves lo and hi (as int32) is in the set. */
  has(lo: number, hi: number): boolean {
    const l16 = lo & 0xffff;
    if ((this.bits[l16 >> 3]! & (1 << (l16 & 7))) === 0) return false;
    return this.byLo.get(lo | 0)?.includes(hi | 0) ?? false;
  }
}

/** The first position p in [64, len(b)] whose h(p) is an old mark, or 0. */
export function resync(b: Uint8Array, marks: MarkSet, t: GearTable): number {
  const { slo: tl, shi: th } = t;
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < GEAR_WINDOW; i++) {
    const x = b[i]!;
    const g = tl[x]!;
    const s = lo << 1;
    const l2 = (s + g) | 0;
    hi = ((hi << 1) + (lo >>> 31) + th[x]! + (((s & g) | ((s | g) & ~l2)) >>> 31)) | 0;
    lo = l2;
  }
  for (let i = GEAR_WINDOW; ; i++) {
    if (marks.has(lo, hi)) return i;
    if (i === b.length) return 0;
    const x = b[i]!;
    const g = tl[x]!;
    const s = lo << 1;
    const l2 = (s + g) | 0;
    hi = ((hi << 1) + (lo >>> 31) + th[x]! + (((s & g) | ((s | g) & ~l2)) >>> 31)) | 0;
    lo = l2;
  }
}

/** Pulls bytes from an async source of pieces of any size. */
export type PieceSource = AsyncIterator<Uint8Array>;

/**
 * Cuts a stream into chunks of at most capacity bytes, holding at most
 * 2 × capacity bytes of it (chunker.go's Chunker).
 */
export class Chunker {
  private buf: Uint8Array;
  private off = 0;
  private end = 0;
  private eof = false;
  private leftover: Uint8Array | undefined;
  private drift = 0;
  private readonly min: number;

  constructor(
    private readonly src: PieceSource,
    private readonly table: GearTable,
    private readonly max: number,
    private readonly marks?: MarkSet,
  ) {
    this.min = chunkMin(max);
    this.buf = new Uint8Array(2 * max);
  }

  private async fill(): Promise<void> {
    if (this.end - this.off > this.max || this.eof) return;
    if (this.off > 0) {
      this.buf.copyWithin(0, this.off, this.end);
      this.end -= this.off;
      this.off = 0;
    }
    while (this.end <= this.max && !this.eof) {
      let piece = this.leftover;
      this.leftover = undefined;
      if (!piece) {
        const r = await this.src.next();
        if (r.done) {
          this.eof = true;
          break;
        }
        piece = r.value;
      }
      const room = this.buf.length - this.end;
      if (piece.length > room) {
        this.leftover = piece.subarray(room);
        piece = piece.subarray(0, room);
      }
      this.buf.set(piece, this.end);
      this.end += piece.length;
    }
  }

  /**
   * The next chunk and its mark, or undefined at the end. The chunk is a
   * view of the chunker's buffer, good until the next call (a caller that
   * keeps it copies it): an upload only hashes and seals it.
   */
  async next(): Promise<{ chunk: Uint8Array; mark: bigint } | undefined> {
    await this.fill();
    const avail = this.buf.subarray(this.off, this.end);
    if (avail.length === 0) return undefined;
    let n = avail.length;
    if (n > this.max) {
      n = 0;
      if (this.marks && this.marks.size > 0 && this.drift <= MAX_DRIFT) n = resync(avail.subarray(0, this.max), this.marks, this.table);
      if (n === 0) n = cut(avail.subarray(0, this.max), this.min, this.table);
    }
    const chunk = avail.subarray(0, n);
    this.off += n;
    return { chunk, mark: markOf(chunk, this.table) };
  }

  /** Says whether the last chunk was an old one (resets or counts the drift). */
  matched(old: boolean): void {
    if (old) this.drift = 0;
    else if (this.marks && this.marks.size > 0) this.drift++;
  }
}
