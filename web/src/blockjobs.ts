// The jobs of a pool of block workers (pool.ts) and the work each does:
// what a browser's Web Workers (web/app's blocks.ts) run, kept beside the
// client whose work it is. Byte arrays whose buffers are listed go by
// transfer, not by copy.
import { readChunks, sealChunkAsync } from "./blockwork.js";
import { BlindError } from "./errors.js";
import type { Remote } from "./remote.js";

export type BlockJob =
  | { n: number; op: "seal"; key: Uint8Array; id: Uint8Array; payload: Uint8Array; blockSize: number; hashPayload: boolean }
  | { n: number; op: "reads"; key: Uint8Array; blockSize: number; chunks: { id: Uint8Array; size: number; hash: Uint8Array }[] };

export type BlockReply =
  | { n: number; ok: true; data: Uint8Array; etag?: Uint8Array; hash?: Uint8Array }
  | { n: number; ok: true; chunks: Uint8Array[] }
  | { n: number; ok: false; kind: string; message: string };

/** Does job j with remote (which reads blocks) and hashOf (a SHA-256): the reply and the buffers to transfer with it. */
export async function runJob(remote: Remote, hashOf: (b: Uint8Array) => Uint8Array, j: BlockJob): Promise<[BlockReply, ArrayBuffer[]]> {
  try {
    if (j.op === "seal") {
      const { data, etag, hash } = await sealChunkAsync(hashOf, j.key, j.id, j.payload, j.blockSize, j.hashPayload);
      return [{ n: j.n, ok: true, data, etag, ...(hash ? { hash } : {}) }, [data.buffer as ArrayBuffer]];
    }
    // Chunks with one request (POST /v1/read where the server has it).
    const chunks = await readChunks(remote, hashOf, j.key, j.blockSize, j.chunks);
    return [{ n: j.n, ok: true, chunks }, chunks.map((c) => c.buffer as ArrayBuffer)];
  } catch (e) {
    const kind = e instanceof BlindError ? e.kind : "other";
    return [{ n: j.n, ok: false, kind, message: e instanceof Error ? e.message : String(e) }, []];
  }
}
