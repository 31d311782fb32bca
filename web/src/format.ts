// The account format of docs/spec.md §3 to §8 and §11: user names and
// passwords, locators, device keys, recovery codes, ownership proofs,
// blocks, the root, the head and share capabilities. Pure functions over
// bytes; the Go twin is client/format.
import { b64url, concat, equal, hex, isZero, Reader, toUTF8, unb64url, unhex, u32be, u64be, Writer, DecodeError } from "./bytes.js";
import { aeadOpen, aeadSeal, argon2, hkdf, hmacSha256, random, sha256 } from "./crypto.js";
import { BlindError, tampered } from "./errors.js";

export const KEY_SIZE = 32;
export const NONCE_SIZE = 24;
export const TAG_SIZE = 16;
export const LENGTH_SIZE = 4;
export const BLOCK_OVERHEAD = NONCE_SIZE + TAG_SIZE + LENGTH_SIZE; // 44
export const ETAG_SIZE = 16;
export const MIN_BLOCK_SIZE = 1024;
export const MAX_BLOCK_SIZE = 4 << 20;
export const MAX_INLINE = 1 << 16;

const SALT_PREFIX = "blindstore/v1/salt";
const INFO_DEVICE = "blindstore/v1/device";
const INFO_RECOVERY = "blindstore/v1/recovery";
const INFO_ROOT_ID = "blindstore/v1/root-id";
const INFO_ROOT_PROOF = "blindstore/v1/root-proof";
const INFO_ROOT_KEY = "blindstore/v1/root-key";
const INFO_HEAD = "blindstore/v1/head";
const INFO_CHUNKER = "blindstore/v1/chunker";
const INFO_SHARE = "blindstore/v1/share";
const PROOF_PREFIX = "proof";
const RENEW_PREFIX = "blindstore/v1/renew";
const BLOCK_AD_PREFIX = "blindstore/v1/block";
const DEVICE_KEY_PREFIX = "blindstore-device-key-v1:";
const CAP_PREFIX = "blind1:";

export function payloadCapacity(blockSize: number): number {
  return blockSize - BLOCK_OVERHEAD;
}

export function validBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_BLOCK_SIZE && n <= MAX_BLOCK_SIZE && (n & (n - 1)) === 0;
}

/** The largest file a client keeps inline in the index (spec §10.4). */
export function inlineMax(blockSize: number): number {
  return Math.min(Math.floor(payloadCapacity(blockSize) / 32), MAX_INLINE);
}

// --- IDs (spec §1) ---

/** A block ID: 16 bytes of a version 4 UUID. */
export type ID = Uint8Array;

export function newID(): ID {
  const id = random(16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return id;
}

export function validID(id: Uint8Array): boolean {
  return id.length === 16 && id[6]! >> 4 === 4 && (id[8]! & 0xc0) === 0x80;
}

export function idString(id: ID): string {
  const h = hex(id);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Parses the canonical 36-character form (either case, as wire.ParseID); undefined if not a v4 ID. */
export function parseID(s: string): ID | undefined {
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) return undefined;
  const id = unhex(s.replace(/-/g, ""));
  return validID(id) ? id : undefined;
}

export function etagOf(data: Uint8Array): Uint8Array {
  return sha256(data).subarray(0, ETAG_SIZE);
}

export function etagHeader(etag: Uint8Array): string {
  return `"${b64url(etag)}"`;
}

export function parseETag(s: string | null): Uint8Array | undefined {
  if (!s || s.length < 2 || s[0] !== '"' || s[s.length - 1] !== '"') return undefined;
  const b = unb64url(s.slice(1, -1));
  return b && b.length === ETAG_SIZE ? b : undefined;
}

// --- user name and password (spec §3) ---

// Unicode White_Space, which Go's strings.TrimSpace trims (JS's trim differs:
// it keeps U+0085 and removes U+FEFF).
const WHITE_SPACE = /^[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/**
 * Go's strings.ToLower: each code point by its simple mapping, without
 * context. JS's toLowerCase uses the full mapping, which differs for İ
 * (U+0130, the only unconditional multi-code-point lower-case mapping) and
 * for a word-final Σ (context); mapping one code point at a time and
 * keeping İ → i gives the simple one.
 */
export function simpleLower(s: string): string {
  let out = "";
  for (const ch of s) {
    if (ch === "\u0130") {
      out += "i";
      continue;
    }
    const l = ch.toLowerCase();
    out += [...l].length === 1 ? l : ch;
  }
  return out;
}

/** Go's strings.ToUpper, one code point at a time by its simple mapping. */
export function simpleUpper(s: string): string {
  let out = "";
  for (const ch of s) {
    const u = ch.toUpperCase();
    out += [...u].length === 1 ? u : ch;
  }
  return out;
}

function validUTF16(s: string): boolean {
  // A lone surrogate has no UTF-8 form: Go would see invalid UTF-8.
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

export function normalizeUsername(u: string): string {
  if (!validUTF16(u)) throw new BlindError("invalid", "the user name is not valid UTF-8");
  const n = simpleLower(u.normalize("NFKC")).normalize("NFKC").replace(WHITE_SPACE, "");
  if (n === "") throw new BlindError("invalid", "the user name is empty");
  return n;
}

export function normalizePassword(p: string): string {
  if (p === "" || !validUTF16(p)) throw new BlindError("invalid", "the password must be non-empty, valid UTF-8");
  return p.normalize("NFC");
}

export function salt(user: string): Uint8Array {
  return sha256(toUTF8(SALT_PREFIX + normalizeUsername(user)));
}

export async function passwordMaster(user: string, password: string): Promise<Uint8Array> {
  const s = salt(user);
  return argon2(toUTF8(normalizePassword(password)), s);
}

export function withDevice(master: Uint8Array, deviceKey: Uint8Array): Uint8Array {
  return hkdf(concat(master, deviceKey), INFO_DEVICE);
}

// --- locators (spec §4.1) ---

export interface Locator {
  id: ID;
  proof: Uint8Array; // the block's write proof
  key: Uint8Array; // the block's AEAD key
}

export function locatorOf(master: Uint8Array): Locator {
  const id = hkdf(master, INFO_ROOT_ID, 16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return { id, proof: hkdf(master, INFO_ROOT_PROOF), key: hkdf(master, INFO_ROOT_KEY) };
}

export async function passwordLocator(user: string, password: string, deviceKey?: Uint8Array): Promise<Locator> {
  let m = await passwordMaster(user, password);
  if (deviceKey) m = withDevice(m, deviceKey);
  return locatorOf(m);
}

// --- device key (spec §4.2) ---

export function deviceKeyText(d: Uint8Array): string {
  return DEVICE_KEY_PREFIX + b64url(d);
}

export function parseDeviceKey(text: string): Uint8Array {
  const s = text.replace(WHITE_SPACE, "");
  if (!s.startsWith(DEVICE_KEY_PREFIX)) throw new BlindError("invalid", "not a blindstore device key file");
  const raw = unb64url(s.slice(DEVICE_KEY_PREFIX.length), true);
  if (!raw || raw.length !== KEY_SIZE) throw new BlindError("invalid", "the device key file is damaged");
  return raw;
}

// --- recovery code (spec §4.3) ---

export const RECOVERY_CODE_SIZE = 20;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export function newRecoveryCode(): Uint8Array {
  return random(RECOVERY_CODE_SIZE);
}

export function recoveryCodeString(code: Uint8Array): string {
  let s = "";
  let acc = 0;
  let bits = 0;
  for (const b of code) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      s += CROCKFORD[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) s += CROCKFORD[(acc << (5 - bits)) & 31];
  return s.match(/.{1,4}/g)!.join("-");
}

export const BAD_RECOVERY_CODE = "not a recovery code: expected 32 characters (0-9, A-Z without I, L, O, U), grouped by dashes";

export function parseRecoveryCode(s: string): Uint8Array {
  let clean = "";
  for (let ch of simpleUpper(s)) {
    if (ch === "-" || ch === " " || ch === "\t") continue;
    if (ch === "O") ch = "0";
    if (ch === "I" || ch === "L") ch = "1";
    clean += ch;
  }
  if (clean.length !== 32) throw new BlindError("invalid", BAD_RECOVERY_CODE);
  const out = new Uint8Array(RECOVERY_CODE_SIZE);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const ch of clean) {
    const v = CROCKFORD.indexOf(ch);
    if (v < 0) throw new BlindError("invalid", BAD_RECOVERY_CODE);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

export function recoveryMaster(code: Uint8Array): Uint8Array {
  return hkdf(code, INFO_RECOVERY);
}

export function recoveryLocator(code: Uint8Array): Locator {
  return locatorOf(recoveryMaster(code));
}

// --- proofs (spec §5) ---

export function writeProof(ownerSecret: Uint8Array, id: ID): Uint8Array {
  return hmacSha256(ownerSecret, toUTF8(PROOF_PREFIX), id);
}

export function renewProof(w: Uint8Array): Uint8Array {
  return sha256(toUTF8(RENEW_PREFIX), w);
}

export function proofHash(r: Uint8Array): Uint8Array {
  return sha256(r);
}

export function chunkerSeed(accountKey: Uint8Array): Uint8Array {
  return hkdf(accountKey, INFO_CHUNKER);
}

// --- blocks (spec §6) ---

export function blockAD(id: ID): Uint8Array {
  return concat(toUTF8(BLOCK_AD_PREFIX), id);
}

/** Encrypts payload into a block of exactly blockSize bytes (into out, every byte of it, when given one of that size). */
export function encryptBlock(key: Uint8Array, id: ID, payload: Uint8Array, blockSize: number, nonce: Uint8Array = random(NONCE_SIZE), into?: Uint8Array): Uint8Array {
  if (!validBlockSize(blockSize)) throw new BlindError("invalid", `block size ${blockSize} is not a power of two from 1024 to 4 MiB`);
  if (payload.length > payloadCapacity(blockSize)) {
    throw new BlindError("invalid", `payload of ${payload.length} bytes exceeds the block capacity of ${payloadCapacity(blockSize)}`);
  }
  const out = into?.length === blockSize ? into : new Uint8Array(blockSize);
  out.set(nonce, 0);
  const frame = frameScratch(blockSize - NONCE_SIZE - TAG_SIZE);
  new DataView(frame.buffer, frame.byteOffset).setUint32(0, payload.length);
  frame.set(payload, LENGTH_SIZE);
  frame.fill(0, LENGTH_SIZE + payload.length);
  aeadSeal(key, nonce, frame, blockAD(id), out.subarray(NONCE_SIZE));
  return out;
}

// The plaintext frame of the block being sealed: one buffer, reused (the
// seal is synchronous and keeps nothing of it), instead of 64 KiB of fresh
// memory per block of an upload.
let scratch: Uint8Array | undefined;
function frameScratch(n: number): Uint8Array {
  if (!scratch || scratch.length !== n) scratch = new Uint8Array(n);
  return scratch;
}

/** Opens a block strictly (spec §6); every failure is a tampered error. */
export function decryptBlock(key: Uint8Array, id: ID, block: Uint8Array, blockSize: number): Uint8Array {
  if (block.length !== blockSize) throw tampered(`block has the wrong size: ${block.length} bytes, want ${blockSize}`);
  let frame: Uint8Array;
  try {
    frame = aeadOpen(key, block.subarray(0, NONCE_SIZE), block.subarray(NONCE_SIZE), blockAD(id));
  } catch {
    throw tampered("block failed authentication: the server returned data that was not written under this id and key");
  }
  const n = new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0);
  const body = frame.subarray(LENGTH_SIZE);
  if (n > body.length) throw tampered("block authenticates but its framing is malformed: payload length exceeds the capacity");
  if (!isZero(body.subarray(n))) throw tampered("block authenticates but its framing is malformed: padding is not zero");
  return body.subarray(0, n);
}

// --- refs ---

export interface Ref {
  id: ID;
  etag: Uint8Array;
}

function readRef(r: Reader): Ref {
  return { id: r.bytes(16).slice(), etag: r.bytes(ETAG_SIZE).slice() };
}

// --- the root (spec §7) ---

export const ROOT_VERSION = 1;

export interface Root {
  accountKey: Uint8Array;
  ownerSecret: Uint8Array;
}

export function newRoot(): Root {
  return { accountKey: random(KEY_SIZE), ownerSecret: random(KEY_SIZE) };
}

export function marshalRoot(r: Root): Uint8Array {
  if (isZero(r.accountKey) || isZero(r.ownerSecret)) throw new BlindError("invalid", "root block: a secret is zero");
  return new Writer(77).byte(ROOT_VERSION).bytes(r.accountKey).bytes(r.ownerSecret).u64(0).u32(0).done();
}

export function unmarshalRoot(b: Uint8Array): Root {
  const bad = (why: string) => tampered("root block is malformed: " + why);
  if (b.length < 1) throw bad("empty");
  if (b[0] !== ROOT_VERSION) throw bad(`version ${b[0]} (this client reads version ${ROOT_VERSION})`);
  if (b.length < 77) throw bad("truncated");
  const r = new Reader(b);
  r.byte();
  const root = { accountKey: r.bytes(32).slice(), ownerSecret: r.bytes(32).slice() };
  const indexLen = r.u64();
  const n = r.u32();
  if (r.left !== n * 32) throw bad("the index list's length");
  if ((indexLen === 0n) !== (n === 0)) throw bad("index length with no index blocks, or the other way round");
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const ref = readRef(r);
    if (!validID(ref.id)) throw bad("index block id");
    const k = hex(ref.id);
    if (seen.has(k)) throw bad("an index block is listed twice");
    seen.add(k);
  }
  if (isZero(root.accountKey) || isZero(root.ownerSecret)) throw bad("a secret is zero");
  return root;
}

export function headMaster(root: Root): Uint8Array {
  return hkdf(concat(root.accountKey, root.ownerSecret), INFO_HEAD);
}

export function headLocator(root: Root): Locator {
  return locatorOf(headMaster(root));
}

// --- the head (spec §8) ---

export const HEAD_VERSION = 2;
export const HEAD_V1 = 1;
export const ROOT_PASSWORD = 1;
export const ROOT_RECOVERY = 2;

export interface RootRef {
  kind: number;
  id: ID;
  proof: Uint8Array;
}

export interface Head {
  version: number; // 2, or 1 as read from the first clients
  generation: number;
  indexLen: number; // version 1 only
  index: Ref[]; // dirs (version 2) or format 1 index blocks (version 1)
  roots: RootRef[];
}

export function marshalHead(h: Head): Uint8Array {
  if (h.version !== HEAD_VERSION) throw new BlindError("other", "a client writes head version 2 only");
  validateHead(h);
  const w = new Writer().byte(HEAD_VERSION).u64(h.generation).u32(h.index.length);
  for (const r of h.index) w.bytes(r.id).bytes(r.etag);
  w.byte(h.roots.length);
  for (const rr of h.roots) w.byte(rr.kind).bytes(rr.id).bytes(rr.proof);
  return w.done();
}

export function unmarshalHead(b: Uint8Array): Head {
  const bad = (why: string) => tampered("head block is malformed: " + why);
  if (b.length < 1 || (b[0] !== HEAD_VERSION && b[0] !== HEAD_V1)) throw bad("unknown version");
  const r = new Reader(b);
  try {
    const version = r.byte();
    const generation = Number(r.u64());
    const indexLen = version === HEAD_V1 ? Number(r.u64()) : 0;
    const n = r.u32();
    if (n > r.left / 32) throw bad("truncated index list");
    const index: Ref[] = [];
    for (let i = 0; i < n; i++) index.push(readRef(r));
    const k = r.byte();
    if (r.left !== k * 49) throw bad(`${r.left} bytes for ${k} roots`);
    const roots: RootRef[] = [];
    for (let i = 0; i < k; i++) roots.push({ kind: r.byte(), id: r.bytes(16).slice(), proof: r.bytes(32).slice() });
    const h = { version, generation, indexLen, index, roots };
    validateHead(h);
    return h;
  } catch (e) {
    if (e instanceof DecodeError) throw bad("truncated");
    throw e;
  }
}

function validateHead(h: Head): void {
  const bad = (why: string) => tampered("head block is malformed: " + why);
  if (h.version === HEAD_V1 && (h.indexLen === 0) !== (h.index.length === 0)) throw bad("index length with no index blocks");
  if (h.version === HEAD_VERSION && h.indexLen !== 0) throw bad("an index length in a version 2 head");
  const seen = new Set<string>();
  const check = (id: ID) => {
    if (!validID(id)) throw bad("an id is not a version 4 UUID");
    const k = hex(id);
    if (seen.has(k)) throw bad("a block is listed twice");
    seen.add(k);
  };
  for (const r of h.index) check(r.id);
  for (const rr of h.roots) {
    if (rr.kind !== ROOT_PASSWORD && rr.kind !== ROOT_RECOVERY) throw bad(`unknown root kind ${rr.kind}`);
    check(rr.id);
  }
}

// --- capabilities and manifest pointers (spec §11) ---

export interface Capability {
  manifest: ID;
  key: Uint8Array;
}

export function capKey(fileKey: Uint8Array, manifest: ID): Uint8Array {
  return hkdf(fileKey, concat(toUTF8(INFO_SHARE), manifest));
}

export function capabilityString(c: Capability): string {
  return CAP_PREFIX + idString(c.manifest) + ":" + b64url(c.key);
}

export const BAD_CAPABILITY = "not a blindstore capability (expected blind1:<id>:<key>, as 'blind share' prints it)";

export function parseCapability(s: string): Capability {
  const t = s.replace(WHITE_SPACE, "");
  const bad = () => new BlindError("invalid", BAD_CAPABILITY);
  if (!t.startsWith(CAP_PREFIX)) throw bad();
  const rest = t.slice(CAP_PREFIX.length);
  const i = rest.indexOf(":");
  if (i < 0) throw bad();
  const idStr = rest.slice(0, i);
  const id = parseID(idStr);
  if (!id || idString(id) !== idStr) throw bad();
  const key = unb64url(rest.slice(i + 1), true);
  if (!key || key.length !== KEY_SIZE) throw bad();
  return { manifest: id, key };
}

export const POINTER_VERSION = 2;
export const POINTER_V1 = 1;
const POINTER_HEADER = 13;

export function pointerLen(k: number): number {
  return POINTER_HEADER + 32 * k;
}

export function marshalPointer(encodedLen: number, refs: Ref[]): Uint8Array {
  const w = new Writer(pointerLen(refs.length)).byte(POINTER_VERSION).u64(encodedLen).u32(refs.length);
  for (const r of refs) w.bytes(r.id).bytes(r.etag);
  return w.done();
}

export function unmarshalPointer(ptr: Uint8Array, blockSize: number): { version: number; encodedLen: number; refs: Ref[] } {
  const bad = () => tampered("the share manifest is malformed");
  if (ptr.length < POINTER_HEADER || (ptr[0] !== POINTER_VERSION && ptr[0] !== POINTER_V1)) throw bad();
  const r = new Reader(ptr);
  const version = r.byte();
  const encLen = r.u64();
  const k = r.u32();
  if (ptr.length - POINTER_HEADER !== k * 32 || k === 0 || encLen > BigInt(k) * BigInt(payloadCapacity(blockSize))) throw bad();
  const refs: Ref[] = [];
  for (let i = 0; i < k; i++) refs.push(readRef(r));
  return { version, encodedLen: Number(encLen), refs };
}

export { u32be, u64be, equal };
