// A worker of the client's pool (pool.ts): it seals chunks of an upload
// and reads, opens and checks the blocks of a download beside the client's
// worker, so that a put or get uses more than one thread. It holds no
// account: each job brings the file's key.
import { readChunk, readChunks, sealChunkAsync } from "../../src/blockwork.js";
import { sha256Hasher } from "../../src/crypto.js";
import { BlindError } from "../../src/errors.js";
import { Remote } from "../../src/remote.js";
import type { BlockJob, BlockReply } from "./protocol.js";

declare const self: DedicatedWorkerGlobalScope;

const remote = new Remote(self.location.origin);
const hasher = sha256Hasher();

self.onmessage = async (ev: MessageEvent<BlockJob>) => {
  const j = ev.data;
  const post = (r: BlockReply, t: Transferable[] = []) => self.postMessage(r, t);
  try {
    const hashOf = await hasher;
    if (j.op === "seal") {
      const { data, etag, hash } = await sealChunkAsync(hashOf, j.key, j.id, j.payload, j.blockSize, j.hashPayload);
      post({ n: j.n, ok: true, data, etag, ...(hash ? { hash } : {}) }, [data.buffer]);
    } else if (j.op === "reads") {
      // Several chunks with one request (POST /v1/read where the server has it).
      const chunks = await readChunks(remote, hashOf, j.key, j.blockSize, j.chunks);
      post({ n: j.n, ok: true, chunks }, chunks.map((c) => c.buffer as ArrayBuffer));
    } else {
      const p = await readChunk(remote, hashOf, j.id, j.key, j.blockSize, j.size, j.hash);
      post({ n: j.n, ok: true, data: p }, [p.buffer]);
    }
  } catch (e) {
    const kind = e instanceof BlindError ? e.kind : "other";
    post({ n: j.n, ok: false, kind, message: e instanceof Error ? e.message : String(e) });
  }
};
