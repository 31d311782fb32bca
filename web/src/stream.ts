// Sources and sinks of file content: Blob, ReadableStream, async iterable
// or bytes in, ReadableStream out, never holding a whole file.

import { concat } from "./bytes.js";

/**
 * File content to store. An AsyncIterable (say a generator over Node's
 * FileHandle.read) may hand out the same buffer each time: every piece is
 * used up or copied before the next is asked for. In Node that is the
 * cheap way to read a file: a file Blob's stream costs about 4 ms of CPU
 * per MiB there, reads into one reused buffer under 1 ms.
 */
export type Source = Blob | ReadableStream<Uint8Array> | Uint8Array | AsyncIterable<Uint8Array>;

/** The size of src when it is known before reading. */
export function sourceSize(src: Source): number | undefined {
  if (src instanceof Uint8Array) return src.length;
  if (typeof Blob !== "undefined" && src instanceof Blob) return src.size;
  return undefined;
}

/** The size of the slices a Blob is read in. */
const BLOB_PIECE = 4 << 20;

/** The pieces of src, in order, as they come. */
export async function* pieces(src: Source): AsyncGenerator<Uint8Array> {
  if (src instanceof Uint8Array) {
    // Slices keep a caller's huge array from being copied whole anywhere.
    for (let o = 0; o < src.length; o += 1 << 20) yield src.subarray(o, Math.min(src.length, o + (1 << 20)));
    return;
  }
  if (!(typeof ReadableStream !== "undefined" && src instanceof ReadableStream) && !(typeof Blob !== "undefined" && src instanceof Blob)) {
    for await (const p of src as AsyncIterable<Uint8Array>) if (p.length > 0) yield p;
    return;
  }
  if (!(src instanceof ReadableStream)) {
    // A Blob is read a slice at a time: its stream() hands out small
    // pieces through a pipe, and in Chromium that cost about 20 ms of CPU
    // per MiB of a file, against a few for a slice read whole.
    for (let o = 0; o < src.size; o += BLOB_PIECE) {
      yield new Uint8Array(await src.slice(o, Math.min(src.size, o + BLOB_PIECE)).arrayBuffer());
    }
    return;
  }
  const stream = src;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (value.length > 0) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** Reads all of a stream into one array (for tests and small files). */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of pieces(stream)) parts.push(p);
  return concat(...parts);
}
