// The client's pool of block workers in the browser: the generic pool of
// the client package (src/pool.ts) over Web Workers that run blocks.ts.
import type { BlockJob, BlockReply } from "../../src/blockjobs.js";
import { Pool, type PoolThread } from "../../src/pool.js";
import type { Remote } from "../../src/remote.js";

function webWorker(): PoolThread {
  const w = new Worker("/blocks.js");
  return {
    post: (job: BlockJob, transfer: ArrayBuffer[]) => w.postMessage(job, transfer),
    onReply: (fn) => {
      w.onmessage = (ev: MessageEvent<BlockReply>) => fn(ev.data);
    },
    onFail: (fn) => {
      w.onerror = (ev) => {
        ev.preventDefault();
        fn(ev.message);
      };
    },
    terminate: () => w.terminate(),
  };
}

/** A pool of n Web Workers; remote reads in line when none is left. */
export function newPool(n: number, remote: Remote): Pool {
  return new Pool(n, remote, webWorker);
}
