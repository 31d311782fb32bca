// The primitives of docs/spec.md §2, from well-kept libraries only:
// @noble/hashes (SHA-256, HMAC, HKDF), @noble/ciphers (XChaCha20-Poly1305)
// and hash-wasm (Argon2id in WebAssembly, fast enough for 64 MiB and 3
// passes in a browser).
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { hkdf as nobleHkdf } from "@noble/hashes/hkdf.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { argon2id, createSHA256 } from "hash-wasm";
import { concat, toUTF8 } from "./bytes.js";

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return nobleSha256(parts[0]!);
  const h = nobleSha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/**
 * SHA-256 by the platform (WebCrypto: native code, several times faster
 * than hashing in JavaScript), for the data paths where every byte of a
 * file is hashed.
 */
export async function sha256Native(b: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
}

/** An incremental SHA-256 for a whole file (hash-wasm's WebAssembly one: WebCrypto has no incremental hash). */
export async function newFileHash(): Promise<{ update(b: Uint8Array): void; digest(): Uint8Array }> {
  const h = await createSHA256();
  h.init();
  return {
    update: (b) => {
      h.update(b);
    },
    digest: () => h.digest("binary"),
  };
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
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
  return argon2id({
    password,
    salt,
    iterations: ARGON2.time,
    memorySize: ARGON2.memoryKiB,
    parallelism: ARGON2.threads,
    hashLength: ARGON2.length,
    outputType: "binary",
  });
}

export function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes a call.
  for (let o = 0; o < n; o += 65536) globalThis.crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

/** XChaCha20-Poly1305 seal: ciphertext ‖ tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out?: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext, out);
}

/** XChaCha20-Poly1305 open; throws when the tag does not verify. */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
}

export { concat };
