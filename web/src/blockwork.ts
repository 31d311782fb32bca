// The per-block work of put and get (sealing a chunk; reading, opening and
// checking one), by itself, so that a host can run it on other threads:
// the browser app spreads it over a pool of Web Workers (web/app), where a
// single worker spent its time on one block after another. Remote.work is
// how a host hands its pool to the client; without it the client does the
// same work in line.
import { equal } from "./bytes.js";
import { asyncDigest } from "./crypto.js";
import { BlindError, kindOf, wrap } from "./errors.js";
import { decryptBlock, encryptBlock, ETAG_SIZE, type ID } from "./format.js";
import type { Remote } from "./remote.js";

export interface BlockWork {
  /**
   * encryptBlock(key, id, payload, blockSize) and the block's ETag.
   * payload is the worker's to keep (the caller gives it away).
   */
  seal(key: Uint8Array, id: ID, payload: Uint8Array, blockSize: number, hashPayload?: boolean): Promise<Sealed>;
  /** readChunks's answer: the chunks of one file (of key), read with as few requests as the server allows. */
  readChunks(key: Uint8Array, blockSize: number, chunks: ChunkRef[]): Promise<Uint8Array[]>;
}

/** A chunk of a file as the index records it: its block, its size and SHA-256. */
export interface ChunkRef {
  id: ID;
  size: number;
  hash: Uint8Array;
}

/** A sealed chunk: its block, the block's ETag and, when asked for, the chunk's SHA-256. */
export interface Sealed {
  data: Uint8Array;
  etag: Uint8Array;
  hash?: Uint8Array;
}

/**
 * sealChunk on a thread that may wait: with WebCrypto (a secure context)
 * both hashes are native and run beside the caller, where hash-wasm's
 * SHA-256 was a third of the CPU of sealing; else hashOf does them.
 */
export async function sealChunkAsync(hashOf: (b: Uint8Array) => Uint8Array, key: Uint8Array, id: ID, payload: Uint8Array, blockSize: number, hashPayload: boolean): Promise<Sealed> {
  const subtle = asyncDigest();
  if (!subtle) {
    const hash = hashPayload ? hashOf(payload) : undefined;
    return { ...sealChunk(hashOf, key, id, payload, blockSize), ...(hash ? { hash } : {}) };
  }
  const hashed = hashPayload ? subtle.digest("SHA-256", payload as Uint8Array<ArrayBuffer>) : undefined;
  const data = encryptBlock(key, id, payload, blockSize);
  const etag = new Uint8Array(await subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>)).subarray(0, ETAG_SIZE);
  return hashed ? { data, etag, hash: new Uint8Array(await hashed) } : { data, etag };
}

/** seal's work: the block and its ETag (hashOf is a SHA-256). */
export function sealChunk(hashOf: (b: Uint8Array) => Uint8Array, key: Uint8Array, id: ID, payload: Uint8Array, blockSize: number, into?: Uint8Array): { data: Uint8Array; etag: Uint8Array } {
  const data = encryptBlock(key, id, payload, blockSize, undefined, into);
  return { data, etag: hashOf(data).subarray(0, ETAG_SIZE) };
}

const GONE = "a block of the file is gone from the server (expired unrenewed, or deleted)";

const SWAPPED = "a block of the file holds another chunk than the index recorded (blocks swapped?)";

/** A chunk's block opened with the file's key and held to the chunk's size (openChunk checks its SHA-256 too). */
function openSized(id: ID, key: Uint8Array, data: Uint8Array, blockSize: number, size: number): Uint8Array {
  let p: Uint8Array;
  try {
    p = decryptBlock(key, id, data, blockSize);
  } catch (e) {
    throw wrap("tampered", "a block of the file", e);
  }
  if (p.length !== size) throw new BlindError("tampered", SWAPPED);
  return p;
}

/** A chunk's block opened with the file's key and held to the chunk's size and SHA-256. */
function openChunk(hashOf: (b: Uint8Array) => Uint8Array, id: ID, key: Uint8Array, data: Uint8Array, blockSize: number, size: number, hash: Uint8Array): Uint8Array {
  const p = openSized(id, key, data, blockSize, size);
  if (!equal(hashOf(p), hash)) throw new BlindError("tampered", SWAPPED);
  return p;
}

/**
 * Chunks of a file, each block read, opened with the file's key and held
 * to the size and SHA-256 that the index recorded (a missing block is
 * "not found", one that does not open or holds another chunk "tampered"),
 * read with Remote.readMany:
 * one POST /v1/read for up to the server's read_batch of them (block by
 * block where the server has no such route). Each block is opened as it
 * comes in, so that the answer's blocks are never held beside their
 * chunks.
 */
export async function readChunks(remote: Remote, hashOf: (b: Uint8Array) => Uint8Array, key: Uint8Array, blockSize: number, chunks: ChunkRef[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = new Array(chunks.length);
  // With WebCrypto each chunk's SHA-256 runs beside this thread, as
  // sealChunkAsync's do, and the chunks are given out only once every one
  // is checked; else hashOf checks them in line.
  const subtle = asyncDigest();
  const checks: Promise<void>[] = [];
  try {
    await remote.readMany(
      chunks.map((c) => c.id),
      (i, data) => {
        const c = chunks[i]!;
        if (!subtle) {
          out[i] = openChunk(hashOf, c.id, key, data, blockSize, c.size, c.hash);
          return;
        }
        const p = openSized(c.id, key, data, blockSize, c.size);
        out[i] = p;
        const check = subtle.digest("SHA-256", p as Uint8Array<ArrayBuffer>).then((h) => {
          if (!equal(new Uint8Array(h), c.hash)) throw new BlindError("tampered", SWAPPED);
        });
        check.catch(() => {}); // awaited below, unless the read fails first
        checks.push(check);
      },
      { hash: false },
    );
    await Promise.all(checks);
  } catch (e) {
    if (kindOf(e) === "not found") throw new BlindError("not found", GONE);
    throw e;
  }
  return out;
}
