// Byte helpers shared by the format code: hex, base64url, UTF-8, varints
// and big-endian integers, written for Uint8Array without Node's Buffer so
// that the package runs in a browser worker too.

export const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function toUTF8(s: string): Uint8Array {
  return utf8.encode(s);
}

/** Decodes UTF-8, or returns undefined when b is not valid UTF-8. */
export function fromUTF8(b: Uint8Array): string | undefined {
  try {
    return utf8Strict.decode(b);
  } catch {
    return undefined;
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

/**
 * Whether every byte of a is zero: a word at a time where a is aligned
 * (a block's padding is kilobytes, and a byte loop over it was a third of
 * a get's CPU in Node).
 */
export function isZero(a: Uint8Array): boolean {
  let d = 0;
  let i = 0;
  const lead = Math.min(a.length, (4 - (a.byteOffset & 3)) & 3);
  for (; i < lead; i++) d |= a[i]!;
  const words = (a.length - i) >>> 2;
  if (words > 0) {
    const w = new Uint32Array(a.buffer, a.byteOffset + i, words);
    for (let k = 0; k < words; k++) d |= w[k]!;
    i += words << 2;
  }
  for (; i < a.length; i++) d |= a[i]!;
  return d === 0;
}

const HEX = "0123456789abcdef";
const HEX2 = Array.from({ length: 256 }, (_, x) => HEX[x >> 4]! + HEX[x & 15]!);

export function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX2[b[i]!]!;
  return s;
}

export function unhex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error("not hex: " + s.slice(0, 20));
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64INV = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

/** base64url; padded only when asked (Go's URLEncoding vs RawURLEncoding). */
export function b64url(b: Uint8Array, pad = false): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const v = b[i]! << 16;
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + (pad ? "==" : "");
  } else if (rest === 2) {
    const v = (b[i]! << 16) | (b[i + 1]! << 8);
    s += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + (pad ? "=" : "");
  }
  return s;
}

/**
 * Decodes base64url. strict: no padding and no stray bits in the last
 * character (Go's RawURLEncoding.Strict()); otherwise padding is optional.
 * Returns undefined for anything malformed.
 */
export function unb64url(s: string, strict = false): Uint8Array | undefined {
  if (!strict) s = s.replace(/=+$/, "");
  if (s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64INV[c]! : -1;
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  if (strict && acc !== 0) return undefined;
  return out;
}

export function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

export function u64be(n: bigint | number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** A growable byte buffer for encoders. */
export class Writer {
  private buf: Uint8Array;
  len = 0;
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
  }
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }
  byte(x: number): this {
    this.grow(1);
    this.buf[this.len++] = x;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  u32(n: number): this {
    return this.bytes(u32be(n));
  }
  u64(n: bigint | number): this {
    return this.bytes(u64be(n));
  }
  uvarint(v: bigint | number): this {
    let x = BigInt(v);
    if (x < 0n) throw new Error("uvarint of a negative number");
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    return this.byte(Number(x));
  }
  varint(v: bigint | number): this {
    const x = BigInt(v);
    const ux = x < 0n ? ((-x - 1n) << 1n) | 1n : x << 1n; // zig-zag: (n << 1) ^ (n >> 63)
    return this.uvarint(ux);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export function uvarintLen(v: bigint | number): number {
  let x = BigInt(v);
  let n = 1;
  while (x >= 0x80n) {
    x >>= 7n;
    n++;
  }
  return n;
}

/** Thrown by Reader on malformed input; callers turn it into their own error. */
export class DecodeError extends Error {}

/** A cursor over bytes for decoders: every read checks the length. */
export class Reader {
  off = 0;
  private dv: DataView | undefined;
  constructor(readonly b: Uint8Array) {}
  get left(): number {
    return this.b.length - this.off;
  }
  bytes(n: number): Uint8Array {
    if (n < 0 || n > this.left) throw new DecodeError("truncated");
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  byte(): number {
    // Read in place: an index holds a few varints per chunk, and a view per byte was most of its decoding.
    if (this.off >= this.b.length) throw new DecodeError("truncated");
    return this.b[this.off++]!;
  }
  u16(): number {
    const v = this.bytes(2);
    return (v[0]! << 8) | v[1]!;
  }
  u32(): number {
    const v = this.bytes(4);
    return new DataView(v.buffer, v.byteOffset, 4).getUint32(0);
  }
  u64(): bigint {
    if (this.left < 8) throw new DecodeError("truncated");
    this.dv ??= new DataView(this.b.buffer, this.b.byteOffset, this.b.length);
    const v = this.dv.getBigUint64(this.off);
    this.off += 8;
    return v;
  }
  i64(): bigint {
    const v = this.bytes(8);
    return new DataView(v.buffer, v.byteOffset, 8).getBigInt64(0);
  }
  /** A minimal uvarint of at most 64 bits. */
  uvarint(): bigint {
    // Most are small: up to 7 bytes (49 bits) in a number, exactly.
    const start = this.off;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      const c = this.byte();
      n += (c & 0x7f) * mul;
      if (c < 0x80) {
        if (i > 0 && c === 0) throw new DecodeError("non-minimal varint");
        return BigInt(n);
      }
      mul *= 128;
    }
    this.off = start;
    let x = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const c = this.byte();
      if (i === 9 && c > 1) throw new DecodeError("varint overflows 64 bits");
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) {
        if (i > 0 && c === 0) throw new DecodeError("non-minimal varint");
        return x;
      }
      shift += 7n;
    }
    throw new DecodeError("varint overflows 64 bits");
  }
  varint(): bigint {
    const ux = this.uvarint();
    const x = ux >> 1n;
    return ux & 1n ? -x - 1n : x;
  }
  /** A uvarint that must fit a JS number exactly. */
  num(): number {
    const v = this.uvarint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError("number out of range");
    return Number(v);
  }
}
