// A pool of block workers: put and get hand it the per-block work
// (Remote.work) so that sealing, and reading, opening and checking blocks,
// run on as many threads as the machine has cores instead of one after
// another. The threads are a browser's Web Workers (web/app's pool.ts and
// blocks.ts); each runs runJob (blockjobs.ts).
import type { BlockJob, BlockReply } from "./blockjobs.js";
import { type BlockWork, type ChunkRef, readChunks, type Sealed, sealChunkAsync } from "./blockwork.js";
import { sha256Hasher } from "./crypto.js";
import { BlindError, type Kind } from "./errors.js";
import type { Remote } from "./remote.js";

/** One thread of a pool, whatever the platform's kind. */
export interface PoolThread {
  post(job: BlockJob, transfer: ArrayBuffer[]): void;
  /** Sets the handler of the thread's replies. */
  onReply(fn: (r: BlockReply) => void): void;
  /** Sets the handler of the thread's failure (it did not start, or died). */
  onFail(fn: (message: string) => void): void;
  terminate(): void;
}

type Job = { [K in BlockJob["op"]]: Omit<Extract<BlockJob, { op: K }>, "n"> }[BlockJob["op"]];

interface Member {
  w: PoolThread;
  jobs: Map<number, [(r: BlockReply & { ok: true }) => void, (e: Error) => void]>;
}

export class Pool implements BlockWork {
  private members: Member[] = [];
  private seq = 0;
  private hasher: Promise<(b: Uint8Array) => Uint8Array> | undefined;

  private started = false;

  /**
   * n threads that spawn starts at the first job (a login needs none of
   * them); remote reads blocks in line when none is left (see onFail).
   */
  constructor(
    private readonly n: number,
    private readonly remote: Remote,
    private readonly spawn: () => PoolThread,
  ) {}

  private start(): void {
    this.started = true;
    for (let i = 0; i < this.n; i++) {
      const m: Member = { w: this.spawn(), jobs: new Map() };
      m.w.onReply((r) => {
        const j = m.jobs.get(r.n);
        m.jobs.delete(r.n);
        if (!j) return;
        if (r.ok) j[0](r);
        else j[1](new BlindError(r.kind as Kind, r.message));
      });
      // A thread that fails to start or dies fails its jobs and leaves the
      // pool; without threads the work is done in line.
      m.w.onFail((message) => {
        this.members = this.members.filter((x) => x !== m);
        m.w.terminate();
        const err = new BlindError("other", "a worker of the client's pool failed: " + (message || "it did not start"));
        for (const [, [, bad]] of m.jobs) bad(err);
        m.jobs.clear();
      });
      this.members.push(m);
    }
  }

  /** Stops the threads; later jobs are done in line. */
  close(): void {
    for (const m of this.members) m.w.terminate();
    this.members = [];
  }

  private inline(): Promise<(b: Uint8Array) => Uint8Array> {
    return (this.hasher ??= sha256Hasher());
  }

  private run(job: Job, transfer: ArrayBuffer[]): Promise<BlockReply & { ok: true }> | undefined {
    if (!this.started) this.start();
    if (this.members.length === 0) return undefined;
    // The member with the fewest jobs; the first of them on a tie.
    let m = this.members[0]!;
    for (const x of this.members) if (x.jobs.size < m.jobs.size) m = x;
    const n = ++this.seq;
    return new Promise((resolve, reject) => {
      m.jobs.set(n, [resolve, reject]);
      m.w.post({ ...job, n } as BlockJob, transfer);
    });
  }

  async seal(key: Uint8Array, id: Uint8Array, payload: Uint8Array, blockSize: number, hashPayload = false): Promise<Sealed> {
    const r = this.run({ op: "seal", key, id, payload, blockSize, hashPayload }, [payload.buffer as ArrayBuffer]);
    if (!r) return sealChunkAsync(await this.inline(), key, id, payload, blockSize, hashPayload);
    const a = await r;
    if (!("data" in a)) throw new BlindError("other", "a worker of the client's pool answered a seal with chunks");
    return a.hash ? { data: a.data, etag: a.etag!, hash: a.hash } : { data: a.data, etag: a.etag! };
  }

  /** A job of several chunks: the worker reads them with one request and opens them. */
  async readChunks(key: Uint8Array, blockSize: number, chunks: ChunkRef[]): Promise<Uint8Array[]> {
    const r = this.run({ op: "reads", key, blockSize, chunks: chunks.map((c) => ({ id: c.id, size: c.size, hash: c.hash })) }, []);
    if (!r) return readChunks(this.remote, await this.inline(), key, blockSize, chunks);
    const a = await r;
    if (!("chunks" in a)) throw new BlindError("other", "a worker of the client's pool answered a read of chunks with one");
    return a.chunks;
  }
}
