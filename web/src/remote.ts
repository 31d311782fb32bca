// The HTTP side: blobstore/httpapi/openapi.json as the client uses it
// (config, block GET/PUT/DELETE, batches, atomic commits, renewals), with
// the retry rules of client/remote.go: transient failures back off with
// jitter, 429 waits for Retry-After, a refused token re-reads the config.
import { b64url, concat, equal, hex, toUTF8, u32be } from "./bytes.js";
import { BlindError, kindOf, UnackedError, wrap } from "./errors.js";
import { sha256Hasher, sha256Native } from "./crypto.js";
import { ETAG_SIZE, etagHeader, etagOf, idString, parseETag, parseID, validBlockSize, type ID } from "./format.js";
import type { TokenWallet } from "./tokens.js";
import type { BlockWork } from "./blockwork.js";
import { fetchTransport, nodeTransport, type Req, type Resp, type Transport } from "./transport.js";

export interface TokenKeyInfo {
  token_key: string;
  token_key_id: string;
  not_before: number;
  accepted: boolean;
}

export interface TokenConfig {
  issuer: string;
  challenge: string;
  blocks_per_token: number;
  token_keys: TokenKeyInfo[];
}

export interface ServerConfig {
  version: string;
  block_size: number;
  period_seconds: number;
  retention_periods: number;
  current_period: number;
  limits: {
    renew_batch: number;
    write_batch: number;
    max_batch_refs: number;
    max_manifest_bytes: number;
    max_batch_body_bytes: number;
    pool_window_seconds: number;
    /** The most ids one POST /v1/read may name; absent (or 0) where the server has no such route. */
    read_batch?: number;
    max_read_body_bytes?: number;
    [k: string]: unknown;
  };
  tokens?: TokenConfig;
}

export interface Cond {
  createOnly?: boolean;
  ifMatch?: Uint8Array;
}

export interface BatchItem {
  id: ID;
  proof: Uint8Array;
  data: Uint8Array;
  etag?: Uint8Array;
}

/** An entry of an atomic batch: a write (data), a deletion, or a check. */
export interface CommitItem {
  id: ID;
  proof: Uint8Array;
  data?: Uint8Array;
  check?: boolean;
  cond?: Cond;
  etag?: Uint8Array;
}

export interface RenewItem {
  id: ID;
  proof: Uint8Array; // renew proof
}

export interface RenewResult {
  renewed: number;
  current: number;
  missing: string[];
  refused: string[];
}

export const DEFAULT_PARALLEL = 8;
const RETRIES = 4;
const MAX_WAIT_MS = 30_000;
const BACKOFF_MS = 100;

/** What a record of a POST /v1/read answer begins with: its status byte (found, or not), then the block's ETag. */
const RECORD_FOUND = 0;
const RECORD_MISSING = 1;
const RECORD_HEAD = 1 + ETAG_SIZE;
/** The media type of a POST /v1/read answer. */
const BLOCKS_TYPE = "application/vnd.blindstore.blocks";

/** A block of a read of several: valid only while the callback runs (its memory is reused after). */
export type OnBlock = (i: number, data: Uint8Array, etag: Uint8Array) => void;

/**
 * Splits the body of a POST /v1/read answer into its records as the body
 * comes in, piece by piece: count records of 1 + 16 + blockSize bytes,
 * each handed to onRecord as soon as it is whole (a record within one
 * piece without a copy). It never throws: the first failure is kept in
 * failure and the rest of the body is ignored. A record that says "not
 * found" fails as a GET's 404 does; any other status byte, or more bytes
 * than count records, is not the blindstore API.
 */
export class RecordReader {
  /** Records handed to onRecord so far. */
  done = 0;
  failure: Error | undefined;
  private readonly size: number;
  private rec: Uint8Array | undefined; // a record that straddles pieces
  private fill = 0;

  constructor(
    readonly count: number,
    readonly blockSize: number,
    private readonly onRecord: OnBlock,
  ) {
    this.size = RECORD_HEAD + blockSize;
  }

  push(piece: Uint8Array): void {
    let o = 0;
    while (this.failure === undefined && o < piece.length) {
      if (this.done >= this.count) {
        this.failure = new BlindError("network", `the server answered more than the ${this.count} blocks asked for: it is not the blindstore API`);
        return;
      }
      if (this.fill === 0 && piece.length - o >= this.size) {
        this.record(piece.subarray(o, o + this.size));
        o += this.size;
        continue;
      }
      this.rec ??= new Uint8Array(this.size);
      const k = Math.min(this.size - this.fill, piece.length - o);
      this.rec.set(piece.subarray(o, o + k), this.fill);
      this.fill += k;
      o += k;
      if (this.fill === this.size) {
        this.fill = 0;
        this.record(this.rec);
      }
    }
  }

  /** The body ended: an error unless every record came whole (and none failed). */
  end(): Error | undefined {
    if (this.failure) return this.failure;
    if (this.done < this.count || this.fill > 0) return new Error(`the answer broke off after ${this.done} of ${this.count} blocks`);
    return undefined;
  }

  private record(r: Uint8Array): void {
    const status = r[0]!;
    if (status === RECORD_MISSING) {
      this.failure = new BlindError("not found", "no such block");
      return;
    }
    if (status !== RECORD_FOUND) {
      this.failure = new BlindError("network", `the server answered a block with status ${status}: it is not the blindstore API`);
      return;
    }
    try {
      this.onRecord(this.done, r.subarray(RECORD_HEAD), r.subarray(1, RECORD_HEAD));
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      return;
    }
    this.done++;
  }
}

/** A 412: the block changed (or exists); current is its ETag when the server said. */
export function preconditionError(msg: string, current?: Uint8Array): BlindError {
  return new BlindError("conflict", msg, { precondition: current ? { current } : {} });
}

export function isPrecondition(err: unknown): boolean {
  return err instanceof BlindError && err.precondition !== undefined;
}

class Transient extends Error {
  constructor(
    msg: string,
    readonly retryAfterMs = 0,
    options?: { cause?: unknown },
  ) {
    super(msg, options);
  }
}
class RateLimited extends Error {
  constructor(readonly retryAfterMs: number) {
    super("the server is rate limiting this address (too many failed requests)");
  }
}
class TokenRejected extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function retryAfter(h: string | null): number {
  const n = Number(h?.trim());
  return Number.isInteger(n) && n >= 0 ? n * 1000 : 0;
}

function mediaType(resp: Resp): string {
  return (resp.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Maps a problem code to the client's kind, as wire.problemCodes do. */
const clientKinds: Record<string, BlindError["kind"]> = {
  proof_mismatch: "auth",
  not_found: "not found",
  precondition_failed: "conflict",
  rate_limited: "network",
  unavailable: "network",
  store_full: "network",
  token_required: "quota",
  token_invalid: "quota",
  token_spent: "quota",
};

async function problemError(resp: Resp): Promise<Error> {
  let p: { code?: string; detail?: string } = {};
  const mt = mediaType(resp);
  if (mt === "application/problem+json") {
    try {
      p = JSON.parse(await resp.text());
    } catch {
      /* keep p empty */
    }
  } else {
    await resp.discard();
  }
  switch (resp.status) {
    case 429:
      return new RateLimited(retryAfter(resp.header("Retry-After")));
    case 502:
    case 503:
    case 504:
      return new Transient(`the server is unavailable (${resp.status})`, retryAfter(resp.header("Retry-After")));
  }
  if (mt !== "application/problem+json" || !p.code) {
    return new BlindError("network", `the server answered ${resp.status}, which is not the blindstore API`);
  }
  switch (p.code) {
    case "precondition_failed":
      return preconditionError("the block changed (precondition failed)", parseETag(resp.header("ETag")));
    case "token_spent":
    case "token_invalid":
      return new TokenRejected(`the server refused the token (${p.code})`);
    case "token_required":
      return new BlindError("quota", "this server charges for writes with Privacy Pass tokens: give an invite code to get them");
  }
  const kind = clientKinds[p.code];
  if (kind) return new BlindError(kind, p.code === "not_found" ? "no such block" : `the server refused the request: ${p.code}`);
  return new BlindError("other", `the server refused the request: ${p.code.slice(0, 64)} (${(p.detail ?? "").slice(0, 200)})`);
}

/** A blindstore server: its URL, and how to reach it. */
export class Remote {
  readonly url: string;
  private readonly transport: Transport;
  private cfg: Promise<ServerConfig> | undefined;
  parallel = DEFAULT_PARALLEL;
  /** Pays for writes on a server that charges (spec §14). */
  wallet: TokenWallet | undefined;
  /** Where put and get do their per-block work, when not in line (blockwork.ts). */
  work: BlockWork | undefined;

  constructor(url: string, opts?: { fetch?: typeof fetch; wallet?: TokenWallet }) {
    let u: URL;
    try {
      u = new URL(url.replace(/\/+$/, ""));
    } catch {
      throw new BlindError("invalid", `server address ${JSON.stringify(url)} is not an http:// or https:// URL`);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || !u.host) {
      throw new BlindError("invalid", `server address ${JSON.stringify(url)} is not an http:// or https:// URL`);
    }
    this.url = url.replace(/\/+$/, "");
    // A caller's fetch is used as given; otherwise Node's own HTTP client
    // where there is one (see transport.ts), else the platform's fetch.
    this.transport = opts?.fetch
      ? fetchTransport(opts.fetch)
      : (nodeTransport(this.url) ?? fetchTransport((input, init) => globalThis.fetch(input, init)));
    this.wallet = opts?.wallet;
  }

  private endpoint(path: string): string {
    return this.url + path;
  }

  /** The server's configuration, read once and kept. */
  config(): Promise<ServerConfig> {
    if (!this.cfg) {
      this.cfg = this.readConfig();
      this.cfg.catch(() => {
        this.cfg = undefined;
      });
    }
    return this.cfg;
  }

  forgetConfig(): void {
    this.cfg = undefined;
  }

  private async readConfig(): Promise<ServerConfig> {
    let c: ServerConfig | undefined;
    await this.do("reading the server's configuration", async () => ({ method: "GET", url: this.endpoint("/v1/config"), headers: {} }), async (resp) => {
      if (resp.status !== 200) throw await problemError(resp);
      c = await this.json(resp);
    });
    const cfg = c!;
    const bad = (why: string) => new BlindError("network", "the server's configuration is not usable: " + why);
    if (!validBlockSize(cfg.block_size)) throw bad(`block_size ${cfg.block_size} is not a valid block size`);
    if (!(cfg.period_seconds > 0)) throw bad("period_seconds is not positive");
    if (!(cfg.retention_periods >= 2)) throw bad("retention_periods is below 2");
    if (!(cfg.limits?.renew_batch > 0 && cfg.limits?.write_batch > 0)) throw bad("renew_batch and write_batch must be positive");
    return cfg;
  }

  /** The server's current period, asked now. */
  async currentPeriod(): Promise<number> {
    let c: ServerConfig | undefined;
    await this.do("reading the server's period", async () => ({ method: "GET", url: this.endpoint("/v1/config"), headers: {} }), async (resp) => {
      if (resp.status !== 200) throw await problemError(resp);
      c = await this.json(resp);
    });
    return c!.current_period;
  }

  private async json<T>(resp: Resp): Promise<T> {
    if (mediaType(resp) !== "application/json") {
      await resp.discard();
      throw new BlindError("network", "the server answered something other than JSON: it is not a blindstore server");
    }
    try {
      return JSON.parse(await resp.text()) as T;
    } catch (e) {
      throw new BlindError("network", "the server's answer is not valid JSON: it is not a blindstore server, or the connection broke", { cause: e });
    }
  }

  private async pay(headers: Record<string, string>, charged: boolean): Promise<void> {
    if (!charged) return;
    const cfg = await this.config();
    if (!cfg.tokens) return;
    if (!this.wallet) throw new BlindError("quota", "this server charges for writes with Privacy Pass tokens: give an invite code to get them");
    headers["Authorization"] = await this.wallet.token(this, cfg);
  }

  /**
   * Reads a block; checks its length and the server's ETag of it. Without
   * hash (for file chunks, whose content the caller checks against the
   * index) the ETag is neither computed nor returned.
   */
  async get(id: ID, opts?: { hash?: boolean }): Promise<{ data: Uint8Array; etag: Uint8Array }> {
    const hash = opts?.hash ?? true;
    const cfg = await this.config();
    let out: { data: Uint8Array; etag: Uint8Array } | undefined;
    await this.do("reading a block", async () => ({ method: "GET", url: this.endpoint("/v1/blocks/" + idString(id)), headers: {} }), async (resp) => {
      if (resp.status !== 200) throw await problemError(resp);
      const len = resp.header("Content-Length");
      if (len !== null && Number(len) !== cfg.block_size) {
        await resp.discard();
        throw new BlindError("tampered", `the server answered a block of ${len} bytes, not ${cfg.block_size}`);
      }
      let data: Uint8Array;
      try {
        data = await resp.bytes();
      } catch (e) {
        throw new Transient("reading a block: " + (e instanceof Error ? e.message : String(e)), 0, { cause: e });
      }
      if (data.length !== cfg.block_size) throw new BlindError("tampered", `the server answered a block of ${data.length} bytes, not ${cfg.block_size}`);
      if (!hash) {
        out = { data, etag: new Uint8Array() };
        return;
      }
      const etag = (await sha256Native(data)).subarray(0, ETAG_SIZE);
      const h = resp.header("ETag");
      if (h) {
        const claimed = parseETag(h);
        if (!claimed || hex(claimed) !== hex(etag)) throw new BlindError("tampered", "the server's ETag does not match the block it sent");
      }
      out = { data, etag };
    });
    return out!;
  }

  /**
   * How many blocks one request of readMany reads: the server's
   * read_batch (bounded by its max_read_body_bytes), or 0 where the
   * server reads only block by block.
   */
  async readBatch(): Promise<number> {
    const l = (await this.config()).limits;
    let n = l.read_batch;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) return 0;
    const cap = l.max_read_body_bytes;
    // {"ids":[...]}: 10 bytes, and 39 a quoted id with its comma.
    if (typeof cap === "number" && cap > 0) n = Math.min(n, Math.floor((cap - 10) / 39));
    return Math.max(n, 0);
  }

  /**
   * Reads the blocks ids (repeats allowed), calling onBlock(i, data, etag)
   * for each as it comes in, in order of ids when the server reads
   * several a request (POST /v1/read, read_batch at a time), in any order
   * when it reads only block by block (GETs, parallel at a time). data
   * and etag are onBlock's only while it runs. With hash (the default)
   * each block is held to its ETag; without it (file chunks, which the
   * caller checks against the index) the ETag is the server's word. A
   * missing block fails the read as get does ("not found"); so does an
   * error that onBlock throws. A request that breaks off is retried for
   * the blocks not yet handed out.
   */
  async readMany(ids: ID[], onBlock: OnBlock, opts?: { hash?: boolean }): Promise<void> {
    const hash = opts?.hash ?? true;
    const cfg = await this.config();
    const batch = await this.readBatch();
    if (batch === 0) {
      await parallel(ids.length, this.parallel, async (i) => {
        const got = await this.get(ids[i]!, { hash });
        try {
          onBlock(i, got.data, got.etag);
        } finally {
          this.recycle(got.data);
        }
      });
      return;
    }
    const hashOf = hash ? await sha256Hasher() : undefined;
    const check: OnBlock = hashOf
      ? (i, data, etag) => {
          if (!equal(hashOf(data).subarray(0, ETAG_SIZE), etag)) throw new BlindError("tampered", "the server's ETag does not match the block it sent");
          onBlock(i, data, etag);
        }
      : onBlock;
    for (let o = 0; o < ids.length; o += batch) await this.readRecords(ids.slice(o, o + batch), o, cfg.block_size, check);
  }

  /** One POST /v1/read of ids (ids[k] is block base + k of the caller's read); a retry asks for the rest only. */
  private async readRecords(ids: ID[], base: number, blockSize: number, onBlock: OnBlock): Promise<void> {
    let from = 0;
    const recSize = RECORD_HEAD + blockSize;
    await this.do(
      "reading blocks",
      async () => ({
        method: "POST",
        url: this.endpoint("/v1/read"),
        headers: { "Content-Type": "application/json" },
        body: [toUTF8(JSON.stringify({ ids: ids.slice(from).map(idString) }))],
        streamed: true,
      }),
      async (resp) => {
        if (resp.status !== 200) throw await problemError(resp);
        const n = ids.length - from;
        if (mediaType(resp) !== BLOCKS_TYPE) {
          await resp.discard();
          throw new BlindError("network", `the server answered a read of blocks with ${mediaType(resp) || "no media type"}: it is not the blindstore API`);
        }
        const len = resp.header("Content-Length");
        if (len !== null && Number(len) !== n * recSize) {
          await resp.discard();
          throw new BlindError("network", `the server answered ${len} bytes for ${n} blocks of ${blockSize}: it is not the blindstore API`);
        }
        const start = from;
        const rr = new RecordReader(n, blockSize, (i, data, etag) => onBlock(base + start + i, data, etag));
        let broke: unknown;
        try {
          await resp.stream((p) => rr.push(p));
        } catch (e) {
          broke = e;
        }
        from += rr.done;
        if (rr.failure) throw rr.failure;
        // Every record whole is the whole answer, whatever the connection did after it.
        const incomplete = rr.end();
        if (incomplete) {
          const detail = broke === undefined ? "" : ": " + (broke instanceof Error ? broke.message : String(broke));
          throw new Transient(`reading blocks: ${incomplete.message}${detail}`, 0, { cause: broke ?? incomplete });
        }
      },
    );
  }

  /** Takes back a block that get returned and that its reader is done with: nothing may refer to it after this. */
  recycle(data: Uint8Array): void {
    this.transport.recycle?.(data);
  }

  /** Writes one block under a precondition; returns its ETag. */
  async put(id: ID, proof: Uint8Array, data: Uint8Array, c: Cond = {}): Promise<Uint8Array> {
    const want = etagOf(data);
    await this.do(
      "writing a block",
      async () => {
        const headers: Record<string, string> = { "Content-Type": "application/octet-stream", "Blind-Proof": b64url(proof) };
        if (c.createOnly) headers["If-None-Match"] = "*";
        if (c.ifMatch) headers["If-Match"] = etagHeader(c.ifMatch);
        await this.pay(headers, !c.ifMatch);
        return { method: "PUT", url: this.endpoint("/v1/blocks/" + idString(id)), headers, body: [data] };
      },
      async (resp) => {
        if (resp.status === 201 || resp.status === 204) {
          await resp.discard();
          const got = parseETag(resp.header("ETag"));
          if (!got || hex(got) !== hex(want)) throw new BlindError("tampered", "the server acknowledged a write with an ETag that is not the data's");
          return;
        }
        const err = await problemError(resp);
        if (err instanceof BlindError && err.precondition?.current && hex(err.precondition.current) === hex(want)) return; // our own write, landed before
        throw err;
      },
    );
    return want;
  }

  /** Deletes a block; one already gone is not an error. */
  async delete(id: ID, proof: Uint8Array, ifMatch?: Uint8Array): Promise<void> {
    try {
      await this.do(
        "deleting a block",
        async () => {
          const headers: Record<string, string> = { "Blind-Proof": b64url(proof) };
          if (ifMatch) headers["If-Match"] = etagHeader(ifMatch);
          return { method: "DELETE", url: this.endpoint("/v1/blocks/" + idString(id)), headers };
        },
        async (resp) => {
          if (resp.status === 204) {
            await resp.discard();
            return;
          }
          throw await problemError(resp);
        },
      );
    } catch (e) {
      if (kindOf(e) === "not found") return;
      throw e;
    }
  }

  private async postBatch(
    what: string,
    manifest: { blocks: Record<string, unknown>[]; atomic?: boolean },
    data: Uint8Array[],
    pay: boolean,
    results: (rs: { id: string; status: number; code?: string; etag?: string }[]) => void,
  ): Promise<void> {
    const m = toUTF8(JSON.stringify(manifest));
    const body = [concat(u32be(m.length), m), ...data];
    await this.do(
      what,
      async () => {
        const headers: Record<string, string> = { "Content-Type": "application/vnd.blindstore.batch" };
        await this.pay(headers, pay);
        return { method: "POST", url: this.endpoint("/v1/blocks"), headers, body };
      },
      async (resp) => {
        if (resp.status !== 200) throw await problemError(resp);
        const out = await this.json<{ results: { id: string; status: number; code?: string; etag?: string }[] }>(resp);
        if (!out || !Array.isArray(out.results) || out.results.length !== manifest.blocks.length) {
          throw new BlindError("network", "the server answered a batch with the wrong number of results");
        }
        results(out.results);
      },
    );
  }

  /** Creates new blocks, in batches of the server's write_batch. */
  async putBatch(items: BatchItem[]): Promise<void> {
    const cfg = await this.config();
    for (let o = 0; o < items.length; o += cfg.limits.write_batch) {
      const part = items.slice(o, o + cfg.limits.write_batch);
      const want = part.map((it) => (it.etag ??= etagOf(it.data)));
      const blocks = part.map((it) => ({ id: idString(it.id), proof: b64url(it.proof), create_only: true }));
      await this.postBatch("writing blocks", { blocks }, part.map((it) => it.data), true, (rs) => {
        rs.forEach((res, i) => {
          if (res.id !== blocks[i]!.id) throw new BlindError("network", "the server answered a batch's results out of order");
          const etag = res.etag ? parseETag(res.etag) : undefined;
          const mine = etag !== undefined && hex(etag) === hex(want[i]!);
          if ((res.status === 201 || res.status === 204 || res.status === 412) && mine) return;
          if (res.status === 201 || res.status === 204) throw new BlindError("tampered", "the server acknowledged a write with an ETag that is not the data's");
          if (res.status === 412) throw preconditionError("a new block's random id is taken");
          if (res.status === 403) throw new BlindError("auth", "the server refused a block's write proof");
          throw new BlindError("network", `the server answered status ${res.status} for a block of a batch`);
        });
      });
    }
  }

  /** Applies items as one atomic batch (client.Remote.Commit and commitOutcome). */
  async commit(items: CommitItem[]): Promise<void> {
    const manifest = commitManifest(items);
    const want = items.map((it) => (it.data ? (it.etag ??= etagOf(it.data)) : undefined));
    const data = items.filter((it) => it.data).map((it) => it.data!);
    const creates = items.some((it) => it.data && !it.cond?.ifMatch);
    await this.postBatch("committing", manifest, data, creates, (rs) => {
      let failed: Error | undefined;
      let applied = true;
      let landedBefore = false;
      let unacked = false;
      rs.forEach((res, i) => {
        if (res.id !== manifest.blocks[i]!.id) throw new BlindError("network", "the server answered a batch's results out of order");
        const it = items[i]!;
        if (it.check) {
          if (res.status === 200) return;
          if (res.status === 424) applied = false;
          else if (res.status === 404 || res.status === 412 || res.status === 403) {
            applied = false;
            unacked = true;
          } else throw new BlindError("network", `the server answered status ${res.status} for a check of a batch`);
          return;
        }
        if (!it.data) return; // a deletion: cleanup, whatever its outcome
        const etag = res.etag ? parseETag(res.etag) : undefined;
        switch (res.status) {
          case 201:
          case 204:
            if (!etag || hex(etag) !== hex(want[i]!)) throw new BlindError("tampered", "the server acknowledged a write with an ETag that is not the data's");
            break;
          case 424:
            applied = false;
            break;
          case 412:
            applied = false;
            if (etag && hex(etag) === hex(want[i]!)) landedBefore = true;
            else if (it.cond?.createOnly) failed = preconditionError("a new block's random id is taken");
            else failed = preconditionError("the block changed meanwhile", etag);
            break;
          case 403:
            throw new BlindError("auth", "the server refused a block's write proof");
          default:
            throw new BlindError("network", `the server answered status ${res.status} for a block of a batch`);
        }
      });
      if (applied || landedBefore) return;
      if (failed) throw failed;
      if (unacked) throw new UnackedError();
      throw new BlindError("network", "the server aborted an atomic batch without saying which entry failed");
    });
  }

  /** Renews blocks, renew_batch a request, `parallel` requests at a time. */
  async renew(items: RenewItem[]): Promise<RenewResult> {
    const cfg = await this.config();
    const size = cfg.limits.renew_batch;
    const parts: RenewItem[][] = [];
    for (let o = 0; o < items.length; o += size) parts.push(items.slice(o, o + size));
    const total: RenewResult = { renewed: 0, current: 0, missing: [], refused: [] };
    await parallel(parts.length, this.parallel, async (i) => {
      const part = parts[i]!;
      const body = toUTF8(JSON.stringify({ blocks: part.map((it) => ({ id: idString(it.id), proof: b64url(it.proof) })) }));
      await this.do(
        "renewing blocks",
        async () => {
          const headers: Record<string, string> = { "Content-Type": "application/json" };
          await this.pay(headers, true);
          return { method: "POST", url: this.endpoint("/v1/renew"), headers, body: [body] };
        },
        async (resp) => {
          if (resp.status !== 200) throw await problemError(resp);
          const out = await this.json<RenewResult>(resp);
          const missing = out.missing ?? [];
          const refused = out.refused ?? [];
          if (out.renewed + out.current + missing.length + refused.length !== part.length) {
            throw new BlindError("network", "the server's renewal counts do not add up to the blocks sent");
          }
          for (const s of [...missing, ...refused]) if (!parseID(s)) throw new BlindError("network", "the server named a malformed block id");
          total.renewed += out.renewed;
          total.current += out.current;
          total.missing.push(...missing);
          total.refused.push(...refused);
        },
      );
    });
    return total;
  }

  /** Sends a request, retrying what may pass on another try (client.Remote.do). */
  async do(what: string, build: () => Promise<Req>, handle: (resp: Resp) => Promise<void>): Promise<void> {
    let waited = 0;
    let tokenTries = 0;
    for (let attempt = 0; ; attempt++) {
      let err: unknown;
      try {
        const req = await build();
        let resp: Resp;
        try {
          resp = await this.transport(req);
        } catch (e) {
          if (e instanceof BlindError) throw e;
          throw new Transient(`cannot reach the server at ${this.url}: ${e instanceof Error ? e.message : String(e)}`, 0, { cause: e });
        }
        await handle(resp);
        return;
      } catch (e) {
        err = e;
      }
      let wait: number;
      if (err instanceof TokenRejected) {
        this.forgetConfig();
        if (++tokenTries > 2) throw new BlindError("quota", what + ": the server refused our tokens", { cause: err });
        continue;
      } else if (err instanceof RateLimited) {
        wait = Math.max(err.retryAfterMs, 1000);
        if (waited + wait > MAX_WAIT_MS) throw new BlindError("network", what + ": " + err.message);
        waited += wait;
      } else if (err instanceof Transient) {
        if (attempt >= RETRIES) throw new BlindError("network", what + ": " + err.message, { cause: err });
        wait = BACKOFF_MS * 2 ** attempt;
        wait = wait / 2 + Math.random() * (wait / 2);
        if (err.retryAfterMs > 0) wait = Math.min(Math.max(wait, err.retryAfterMs), 10_000);
      } else {
        throw wrap("other", what, err);
      }
      await sleep(wait);
    }
  }
}

export function commitManifest(items: CommitItem[]): { atomic: true; blocks: Record<string, unknown>[] } {
  return {
    atomic: true,
    blocks: items.map((it) => {
      const e: Record<string, unknown> = { id: idString(it.id), proof: b64url(it.proof) };
      if (it.cond?.createOnly) e.create_only = true;
      if (it.cond?.ifMatch) e.if_match = etagHeader(it.cond.ifMatch);
      if (!it.data && !it.check) e.delete = true;
      if (it.check) e.check = true;
      return e;
    }),
  };
}

/** Runs f(0) … f(n−1), at most `workers` at a time; the first failure stops the rest. */
export async function parallel(n: number, workers: number, f: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const run = async () => {
    while (failed === undefined && next < n) {
      const i = next++;
      try {
        await f(i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, n)) }, run));
  if (failed !== undefined) throw failed;
}
