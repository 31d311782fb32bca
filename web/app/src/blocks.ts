// A worker of the client's pool (pool.ts): it seals chunks of an upload
// and reads, opens and checks the blocks of a download beside the client's
// worker, so that a put or get uses more than one thread. It holds no
// account: each job brings the file's key.
import { type BlockJob, runJob } from "../../src/blockjobs.js";
import { sha256Hasher } from "../../src/crypto.js";
import { Remote } from "../../src/remote.js";

declare const self: DedicatedWorkerGlobalScope;

const remote = new Remote(self.location.origin);
const hasher = sha256Hasher();

self.onmessage = async (ev: MessageEvent<BlockJob>) => {
  const [reply, transfer] = await runJob(remote, await hasher, ev.data);
  self.postMessage(reply, transfer);
};
