// The primitives of docs/spec.md §2, from well-kept libraries only:
// @noble/hashes (SHA-256, HMAC, HKDF), @noble/ciphers (XChaCha20-Poly1305)
// and hash-wasm (Argon2id in WebAssembly, fast enough for 64 MiB and 3
// passes in a browser).
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { hkdf as nobleHkdf } from "@noble/hashes/hkdf.js";
import { hchacha, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
// hash-wasm is loaded when first needed (see wasm.ts).
const hashWasm = () => import("./wasm.js");
import { concat, toUTF8 } from "./bytes.js";
import { nodeBuiltin } from "./platform.js";

/**
 * The parts of node:crypto the Node fast path uses (OpenSSL's
 * ChaCha20-Poly1305 and SHA-256), found by nodeBuiltin (platform.ts): in
 * browsers, and in older Node, it is undefined and noble does the work.
 */
interface NodeAEAD {
  setAAD(ad: Uint8Array, opts: { plaintextLength: number }): unknown;
  update(b: Uint8Array): Uint8Array;
  final(): Uint8Array;
}
interface NodeHash {
  update(b: Uint8Array): NodeHash;
  digest(): Uint8Array;
}
interface NodeCrypto {
  createHmac(alg: "sha256", key: Uint8Array): NodeHash;
  createCipheriv(alg: "chacha20-poly1305", key: Uint8Array, iv: Uint8Array, opts: { authTagLength: 16 }): NodeAEAD & { getAuthTag(): Uint8Array };
  createDecipheriv(alg: "chacha20-poly1305", key: Uint8Array, iv: Uint8Array, opts: { authTagLength: 16 }): NodeAEAD & { setAuthTag(t: Uint8Array): unknown };
  createHash(alg: "sha256"): NodeHash;
  getCiphers(): string[];
}

function findNodeCrypto(): NodeCrypto | undefined {
  const c = nodeBuiltin<NodeCrypto>("node:crypto");
  try {
    return c && c.getCiphers().includes("chacha20-poly1305") ? c : undefined;
  } catch {
    return undefined;
  }
}

let nodeCrypto = findNodeCrypto();

/** A plain Uint8Array over a Buffer's bytes: Buffer's slice() is a view, not the copy callers expect. */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Which implementation seals and opens blocks: "node" (OpenSSL) or "noble". */
export function aeadBackend(): "node" | "noble" {
  return nodeCrypto ? "node" : "noble";
}

/** @internal For the tests that hold the two implementations to each other. */
export function useNodeCrypto(on: boolean): void {
  nodeCrypto = on ? findNodeCrypto() : undefined;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (nodeCrypto) {
    const h = nodeCrypto.createHash("sha256");
    for (const p of parts) h.update(p);
    return plain(h.digest());
  }
  if (parts.length === 1) return nobleSha256(parts[0]!);
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * WebCrypto, where its asynchronous SHA-256 is the native one to use for
 * chunks and blocks (a browser's secure context): it runs beside the
 * calling thread. Undefined in Node, whose synchronous node:crypto hash is
 * native already, and where there is no WebCrypto.
 */
export function asyncDigest(): SubtleCrypto | undefined {
  return nodeCrypto ? undefined : globalThis.crypto?.subtle;
}

/**
 * SHA-256 by the platform (WebCrypto: native code, several times faster
 * than hashing in JavaScript), for the data paths where every byte of a
 * file is hashed. In Node, node:crypto's synchronous hash: WebCrypto's
 * digest there copies the data and hops to the thread pool for each block.
 */
export async function sha256Native(b: Uint8Array): Promise<Uint8Array> {
  if (nodeCrypto) return plain(nodeCrypto.createHash("sha256").update(b).digest());
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
}

/**
 * A synchronous SHA-256 for the data paths, which hash every chunk and
 * every block: node:crypto's in Node, else hash-wasm's WebAssembly one.
 * WebCrypto's digest is native but asynchronous, and an upload that awaits
 * it twice a chunk spends its time waiting for the answers, not hashing.
 */
export async function sha256Hasher(): Promise<(b: Uint8Array) => Uint8Array> {
  const nc = nodeCrypto;
  if (nc) return (b) => plain(nc.createHash("sha256").update(b).digest());
  const h = await (await hashWasm()).createSHA256();
  return (b) => {
    h.init();
    h.update(b);
    return h.digest("binary");
  };
}

/** An incremental SHA-256 for a whole file (node:crypto's in Node, else hash-wasm's WebAssembly one: WebCrypto has no incremental hash). */
export async function newFileHash(): Promise<{ update(b: Uint8Array): void; digest(): Uint8Array }> {
  if (nodeCrypto) {
    const nh = nodeCrypto.createHash("sha256");
    return {
      update: (b) => {
        nh.update(b);
      },
      digest: () => plain(nh.digest()),
    };
  }
  const h = await (await hashWasm()).createSHA256();
  h.init();
  return {
    update: (b) => {
      h.update(b);
    },
    digest: () => h.digest("binary"),
  };
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  // node:crypto's where there is one: an upload computes one per block.
  if (nodeCrypto) {
    const h = nodeCrypto.createHmac("sha256", key);
    for (const p of parts) h.update(p);
    return plain(h.digest());
  }
  const h = hmac.create(nobleSha256, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HKDF-SHA256 with an empty salt (spec §2, `expand` in client/format/keys.go). */
export function hkdf(ikm: Uint8Array, info: string | Uint8Array, n = 32): Uint8Array {
  return nobleHkdf(nobleSha256, ikm, undefined, typeof info === "string" ? toUTF8(info) : info, n);
}

export const ARGON2 = { time: 3, memoryKiB: 65536, threads: 4, length: 32 } as const;

export async function argon2(password: Uint8Array, salt: Uint8Array): Promise<Uint8Array> {
  return (await hashWasm()).argon2id({
    password,
    salt,
    iterations: ARGON2.time,
    memorySize: ARGON2.memoryKiB,
    parallelism: ARGON2.threads,
    hashLength: ARGON2.length,
    outputType: "binary",
  });
}

// Small requests (an upload takes a block ID and a nonce per block) are cut
// from 4 KiB of randomness fetched at once: a getRandomValues call costs
// more than the bytes. Bytes handed out are zeroed in the pool.
let pool = new Uint8Array(0);
let poolAt = 0;

export function random(n: number): Uint8Array {
  if (n <= 64) {
    if (poolAt + n > pool.length) {
      pool = new Uint8Array(4096);
      globalThis.crypto.getRandomValues(pool);
      poolAt = 0;
    }
    const out = pool.slice(poolAt, poolAt + n);
    pool.fill(0, poolAt, poolAt + n);
    poolAt += n;
    return out;
  }
  const b = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes a call.
  for (let o = 0; o < n; o += 65536) globalThis.crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

function words(b: Uint8Array, n: number): Uint32Array {
  const dv = new DataView(b.buffer, b.byteOffset, 4 * n);
  return Uint32Array.from({ length: n }, (_, i) => dv.getUint32(4 * i, true));
}

/**
 * XChaCha20's subkey and ChaCha20 nonce (draft-irtf-cfrg-xchacha §2.3):
 * HChaCha20 of the key and the first 16 nonce bytes (noble's), then
 * 4 zero bytes ‖ the last 8 nonce bytes.
 */
function xchachaSubkey(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Uint8Array } {
  if (key.length !== 32) throw new Error(`XChaCha20-Poly1305 key must be 32 bytes, not ${key.length}`);
  if (nonce.length !== 24) throw new Error(`XChaCha20-Poly1305 nonce must be 24 bytes, not ${nonce.length}`);
  const out = new Uint32Array(8);
  hchacha(SIGMA, words(key, 8), words(nonce, 4), out);
  const subkey = new Uint8Array(32);
  const dv = new DataView(subkey.buffer);
  for (let i = 0; i < 8; i++) dv.setUint32(4 * i, out[i]!, true);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, 24), 4);
  return { subkey, iv };
}

/** XChaCha20-Poly1305 seal: ciphertext ‖ tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out?: Uint8Array): Uint8Array {
  if (!nodeCrypto) return xchacha20poly1305(key, nonce, ad).encrypt(plaintext, out);
  const { subkey, iv } = xchachaSubkey(key, nonce);
  const c = nodeCrypto.createCipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  const rest = c.final();
  const dst = out ?? new Uint8Array(plaintext.length + 16);
  if (dst.length < plaintext.length + 16) throw new Error("XChaCha20-Poly1305: output buffer too small");
  dst.set(body, 0);
  dst.set(rest, body.length);
  dst.set(c.getAuthTag(), plaintext.length);
  return dst.length === plaintext.length + 16 ? dst : dst.subarray(0, plaintext.length + 16);
}

/** XChaCha20-Poly1305 open; throws when the tag does not verify. */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  if (!nodeCrypto) return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
  if (sealed.length < 16) throw new Error("XChaCha20-Poly1305: sealed data shorter than its tag");
  const { subkey, iv } = xchachaSubkey(key, nonce);
  const n = sealed.length - 16;
  const d = nodeCrypto.createDecipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 });
  d.setAAD(ad, { plaintextLength: n });
  d.setAuthTag(sealed.subarray(n));
  const body = d.update(sealed.subarray(0, n));
  d.final(); // throws when the tag does not verify
  return plain(body);
}

export { concat };
