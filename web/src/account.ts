// An account as the Go client (client/account.go, indextx.go, put.go,
// get.go, share.go, renew.go) keeps it: signup, login, the index read and
// committed by compare-and-swap of the head with a merge on a lost race,
// put with the chunker and reuse of old chunks, streamed get, share,
// renewal. docs/spec.md §12 and §13.
import { b64url, concat, equal, hex, unb64url } from "./bytes.js";
import { random, newFileHash, sha256, sha256Hasher } from "./crypto.js";
import { BlindError, isUnacked, kindOf, UnackedError, wrap } from "./errors.js";
import {
  type Capability,
  capKey,
  capabilityString,
  decryptBlock,
  encryptBlock,
  etagOf,
  headLocator,
  HEAD_V1,
  HEAD_VERSION,
  type Head,
  idString,
  inlineMax,
  KEY_SIZE,
  type Locator,
  marshalHead,
  marshalPointer,
  marshalRoot,
  newID,
  newRecoveryCode,
  newRoot,
  parseCapability,
  parseRecoveryCode,
  passwordLocator,
  payloadCapacity,
  pointerLen,
  POINTER_V1,
  recoveryCodeString,
  recoveryLocator,
  type Ref,
  renewProof,
  type Root,
  type RootRef,
  ROOT_PASSWORD,
  ROOT_RECOVERY,
  unmarshalHead,
  unmarshalPointer,
  unmarshalRoot,
  writeProof,
} from "./format.js";
import {
  assemble,
  checkName,
  type Chunk,
  cloneIndex,
  decodeDir,
  decodeLeaf,
  decodeV1,
  encodeLeafChecked,
  type FileEntry,
  type Index,
  joinLeaf,
  joinPadded,
  lookup,
  merge,
  putFile,
  refsOf,
  removeFile,
  renameFile,
  splitPadded,
  type Tree,
  treeBlocks,
  unreferenced,
  updateTree,
} from "./indexfile.js";
import { Chunker, gearTable, type GearTable, MarkSet } from "./chunker.js";
import { type BatchItem, type CommitItem, commitManifest, isPrecondition, parallel, Remote, type RenewItem, type ServerConfig } from "./remote.js";
import { pieces, type Source, sourceSize } from "./stream.js";
import { readChunks, type Sealed, sealChunk } from "./blockwork.js";

export interface FileInfo {
  name: string;
  size: number;
  modified: Date;
}

export interface Status {
  files: number;
  bytes: number;
  safeUntil: Date;
  tokensLeft?: number;
}

export interface RenewReport {
  period: number;
  sent: number;
  renewed: number;
  current: number;
  missing: number;
  damaged: string[];
  safeUntil: Date;
}

export type Progress = (sent: number, total?: number) => void;

const MAX_UPDATE_ATTEMPTS = 8;
const UPLOADS_IN_FLIGHT = 6; // as the Go client's uploaders: each batch waits the server's pool window
const GET_WINDOW = 16;
// Where the server reads several blocks a request (POST /v1/read): the
// blocks a get holds, in flight or read and not yet given out, are at
// most READ_WINDOW_BYTES, in READS_IN_FLIGHT requests, so that the
// server, the network and the client's opening of blocks overlap.
const READ_WINDOW_BYTES = 8 << 20;
const READS_IN_FLIGHT = 4;
const SESSION_FORMAT = "blindstore-session-v1";
const EMPTY = new Uint8Array();

const ERR_AUTH = "wrong user name or password, or no such account";

interface Staged {
  next: Index;
  tree: Tree;
  pending: BatchItem[];
  written: Ref[];
  obsolete: Ref[];
}

/** A simple lock: account changes run one at a time, as the Go client's mutex makes them. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => {});
    return p;
  }
}

function infoOf(f: FileEntry): FileInfo {
  return { name: f.name, size: f.size, modified: new Date(f.mtimeSec * 1000 + Math.floor(f.mtimeNsec / 1e6)) };
}

function safeUntilOf(cfg: ServerConfig, period: number): Date {
  return new Date((period + cfg.retention_periods) * cfg.period_seconds * 1000);
}

async function readRoot(remote: Remote, loc: Locator): Promise<Root> {
  const cfg = await remote.config();
  let data: Uint8Array;
  try {
    data = (await remote.get(loc.id)).data;
  } catch (e) {
    if (kindOf(e) === "not found") throw new BlindError("auth", ERR_AUTH);
    throw wrap("network", "reading the account's root", e);
  }
  try {
    return unmarshalRoot(decryptBlock(loc.key, loc.id, data, cfg.block_size));
  } catch (e) {
    throw wrap("tampered", "the account's root block", e);
  }
}

export class Account {
  private readonly mu = new Mutex();
  private head!: Head;
  private etag!: Uint8Array;
  private index!: Index;
  private tree: Tree | undefined;
  private seenGen = 0;
  private renewedAt = 0;
  private readonly headLoc: Locator;
  private readonly table: GearTable;

  private constructor(
    readonly remote: Remote,
    private readonly cfg: ServerConfig,
    private user: string,
    private readonly root: Root,
  ) {
    this.headLoc = headLocator(root);
    this.table = gearTable(root.accountKey);
  }

  private static async create(remote: Remote, user: string, root: Root): Promise<Account> {
    return new Account(remote, await remote.config(), user, root);
  }

  // --- signup, login, sessions (spec §12.1, §12.2) ---

  /** @internal */
  static async signup(remote: Remote, user: string, password: string, deviceKey?: Uint8Array): Promise<{ account: Account; recoveryCode: string }> {
    const loc = await passwordLocator(user, password, deviceKey);
    const cfg = await remote.config();
    const exists = new BlindError("conflict", "an account with this user name and password already exists: log in instead");
    try {
      await remote.get(loc.id);
      throw exists;
    } catch (e) {
      if (e === exists) throw e;
      if (kindOf(e) !== "not found") throw wrap("network", "signup", e);
    }
    const root = newRoot();
    const code = newRecoveryCode();
    const rloc = recoveryLocator(code);
    const a = await Account.create(remote, user, root);
    const head: Head = {
      version: HEAD_VERSION,
      generation: 1,
      indexLen: 0,
      index: [],
      roots: [
        { kind: ROOT_PASSWORD, id: loc.id, proof: loc.proof },
        { kind: ROOT_RECOVERY, id: rloc.id, proof: rloc.proof },
      ],
    };
    const hdata = a.encryptHead(head);
    const payload = marshalRoot(root);
    try {
      await remote.putBatch([
        { id: a.headLoc.id, proof: a.headLoc.proof, data: hdata },
        { id: rloc.id, proof: rloc.proof, data: encryptBlock(rloc.key, rloc.id, payload, cfg.block_size) },
        { id: loc.id, proof: loc.proof, data: encryptBlock(loc.key, loc.id, payload, cfg.block_size) },
      ]);
    } catch (e) {
      if (kindOf(e) === "conflict") throw exists;
      throw wrap("network", "signup", e);
    }
    a.head = head;
    a.etag = etagOf(hdata);
    a.index = { generation: 0, renewed: cfg.current_period, files: [] };
    a.tree = { dirs: [], renewed: 0 };
    a.seenGen = 1;
    a.renewedAt = cfg.current_period;
    return { account: a, recoveryCode: recoveryCodeString(code) };
  }

  /** @internal */
  static async open(remote: Remote, user: string, root: Root, seen?: { generation: number; renewed: number }): Promise<Account> {
    const a = await Account.create(remote, user, root);
    if (seen) {
      a.seenGen = seen.generation;
      a.renewedAt = seen.renewed;
    }
    await a.load();
    return a;
  }

  /** @internal */
  static async loginLocator(remote: Remote, user: string, loc: Locator): Promise<Account> {
    return Account.open(remote, user, await readRoot(remote, loc));
  }

  /** Reopens an account from exportState() without the password. */
  static async resume(remote: Remote, state: string): Promise<Account> {
    const damaged = () => new BlindError("auth", "the session is damaged: log in again");
    let st: { format?: string; user?: string; account_key?: string; owner_secret?: string; generation?: number; renewed?: number; wallet?: unknown };
    try {
      st = JSON.parse(state);
    } catch {
      throw damaged();
    }
    const ak = unb64url(st.account_key ?? "", true);
    const os = unb64url(st.owner_secret ?? "", true);
    if (st.format !== SESSION_FORMAT || !ak || !os || ak.length !== KEY_SIZE || os.length !== KEY_SIZE) throw damaged();
    if (st.wallet && remote.wallet) remote.wallet.restore(st.wallet);
    return Account.open(remote, st.user ?? "", { accountKey: ak, ownerSecret: os }, { generation: st.generation ?? 0, renewed: st.renewed ?? 0 });
  }

  /**
   * What "remember this device" keeps: the account's two secrets (never
   * the password), the highest generation seen (so a rolled-back server is
   * still refused) and, on a server that charges, the unspent tokens.
   * Whoever holds it holds the account.
   */
  exportState(): string {
    return JSON.stringify({
      format: SESSION_FORMAT,
      server: this.remote.url,
      user: this.user,
      account_key: b64url(this.root.accountKey),
      owner_secret: b64url(this.root.ownerSecret),
      generation: this.seenGen,
      renewed: this.renewedAt,
      ...(this.remote.wallet ? { wallet: this.remote.wallet.export() } : {}),
    });
  }

  // --- the head and the index (spec §8, §9, §12.2, §12.3) ---

  private encryptHead(h: Head): Uint8Array {
    const p = marshalHead(h);
    if (p.length > payloadCapacity(this.cfg.block_size)) throw new BlindError("other", "the account's index needs more blocks than one head can list");
    return encryptBlock(this.headLoc.key, this.headLoc.id, p, this.cfg.block_size);
  }

  private async readHead(): Promise<{ head: Head; etag: Uint8Array }> {
    let got;
    try {
      got = await this.remote.get(this.headLoc.id);
    } catch (e) {
      if (kindOf(e) === "not found") throw new BlindError("auth", "the account no longer exists (deleted, or expired unrenewed): log in again or sign up");
      throw wrap("network", "reading the account's head", e);
    }
    let head: Head;
    try {
      head = unmarshalHead(decryptBlock(this.headLoc.key, this.headLoc.id, got.data, this.cfg.block_size));
    } catch (e) {
      throw wrap("tampered", "the account's head block", e);
    }
    if (head.generation < this.seenGen) {
      throw new BlindError(
        "tampered",
        `the server returned an older version of the account than this device has seen (generation ${head.generation}, seen ${this.seenGen}): the server is rolling the account back, or was restored from a backup`,
      );
    }
    return { head, etag: got.etag };
  }

  /** Index blocks, several a request where the server reads them so (Remote.readMany), each held to the ETag its ref records. */
  private async readBlocks(refs: Ref[], open: boolean): Promise<Uint8Array[]> {
    const out: Uint8Array[] = new Array(refs.length);
    if (refs.length === 0) return out;
    const take = (i: number, data: Uint8Array, etag: Uint8Array) => {
      const r = refs[i]!;
      if (!open) {
        out[i] = data.slice(); // data is readMany's again after this returns
        return;
      }
      if (!equal(etag, r.etag)) throw new BlindError("tampered", "the server returned an index block that is not the version the account refers to");
      out[i] = decryptBlock(this.root.accountKey, r.id, data, this.cfg.block_size);
    };
    // Without read_batch, readMany reads block by block, parallel GETs at a time.
    const batch = (await this.remote.readBatch()) || refs.length;
    const groups = Math.ceil(refs.length / batch);
    try {
      await parallel(groups, READS_IN_FLIGHT, (g) =>
        this.remote.readMany(
          refs.slice(g * batch, (g + 1) * batch).map((r) => r.id),
          (k, data, etag) => take(g * batch + k, data, etag),
        ),
      );
    } catch (e) {
      if (kindOf(e) === "not found") throw new BlindError("not found", "a block of the account's index is missing (the index changed meanwhile, or expired)");
      throw wrap("network", "reading the account's index", e);
    }
    return out;
  }

  private async readTree(h: Head): Promise<{ index: Index; tree: Tree }> {
    const payload = payloadCapacity(this.cfg.block_size);
    const dirPayloads = await this.readBlocks(h.index, true);
    const dirs = dirPayloads.map((p) => decodeDir(p, payload));
    const refs = dirs.flatMap((d) => d.leaves.flatMap((l) => l.blocks));
    const leafPayloads = await this.readBlocks(refs, true);
    let k = 0;
    const files = dirs.map((d) =>
      d.leaves.map((l) => {
        const enc = joinLeaf(leafPayloads.slice(k, k + l.blocks.length), l.len, payload);
        k += l.blocks.length;
        return decodeLeaf(enc);
      }),
    );
    return assemble(h.generation, h.index, dirs, files);
  }

  private async readIndexV1(h: Head): Promise<Index> {
    const blocks = await this.readBlocks(h.index, false);
    if (h.index.length === 0) return { generation: h.generation, renewed: 0, files: [] };
    const payloads = blocks.map((b, i) => {
      if (!equal(etagOf(b), h.index[i]!.etag)) throw new BlindError("tampered", `index block ${i} is not the version the head refers to`);
      return decryptBlock(this.root.accountKey, h.index[i]!.id, b, this.cfg.block_size);
    });
    if (h.indexLen > payloads.length * payloadCapacity(this.cfg.block_size)) throw new BlindError("tampered", "index length exceeds its blocks");
    return decodeV1(joinPadded(payloads, h.indexLen));
  }

  private async load(): Promise<void> {
    let lastErr: unknown;
    for (let i = 0; i < 4; i++) {
      const { head, etag } = await this.readHead();
      let idx: Index;
      let tree: Tree | undefined;
      try {
        if (head.version === HEAD_V1) idx = await this.readIndexV1(head);
        else ({ index: idx, tree } = await this.readTree(head));
      } catch (e) {
        if (kindOf(e) === "not found") {
          lastErr = e;
          continue;
        }
        throw kindOf(e) === "tampered" ? wrap("tampered", "the account's index", e) : e;
      }
      this.head = head;
      this.etag = etag;
      this.index = idx;
      this.tree = tree;
      this.seenGen = Math.max(this.seenGen, head.generation);
      this.renewedAt = Math.max(this.renewedAt, idx.renewed);
      if (!tree) {
        // A version 1 head: upgrade to format 2 at once (spec §8.3).
        try {
          await this.commit(this.index);
        } catch (e) {
          if (isPrecondition(e)) return this.load();
          throw wrap(kindOf(e), "upgrading the account's index to format 2", e);
        }
      }
      return;
    }
    throw lastErr;
  }

  private encryptIndex(next: Index): Staged {
    const pending: BatchItem[] = [];
    const encrypt = (p: Uint8Array): Ref => {
      const id = newID();
      const data = encryptBlock(this.root.accountKey, id, p, this.cfg.block_size);
      const etag = etagOf(data);
      pending.push({ id, proof: writeProof(this.root.ownerSecret, id), data, etag });
      return { id, etag };
    };
    let from = this.tree;
    let held = this.index;
    let obsolete: Ref[] = [];
    if (!from) {
      from = { dirs: [], renewed: 0 };
      held = { generation: 0, renewed: 0, files: [] };
      obsolete = this.head.index.slice();
    }
    const { tree, obsolete: gone } = updateTree(from, held, next, payloadCapacity(this.cfg.block_size), encrypt);
    return { next, tree, pending, written: [], obsolete: [...obsolete, ...gone] };
  }

  private async writePending(s: Staged | undefined): Promise<void> {
    if (!s || s.pending.length === 0) return;
    try {
      await this.remote.putBatch(s.pending);
    } catch (e) {
      throw wrap("network", "writing the index", e);
    }
    s.written.push(...s.pending.map((it) => ({ id: it.id, etag: it.etag! })));
    s.pending = [];
  }

  private commitFits(items: CommitItem[]): boolean {
    const l = this.cfg.limits;
    if (!(l.max_batch_refs > 0)) return false;
    const writes = items.filter((it) => it.data).length;
    if (writes > l.write_batch || items.length - writes > l.max_batch_refs) return false;
    return !(l.max_manifest_bytes > 0 && JSON.stringify(commitManifest(items)).length > l.max_manifest_bytes);
  }

  private fitDeletions(items: CommitItem[], dels: CommitItem[]): number {
    const l = this.cfg.limits;
    const room = l.max_batch_refs - items.filter((it) => !it.data).length;
    const n = Math.min(Math.max(room, 0), dels.length);
    if (!(l.max_manifest_bytes > 0) || n === 0) return n;
    let size = JSON.stringify(commitManifest(items)).length;
    const entries = commitManifest(dels.slice(0, n)).blocks;
    for (let i = 0; i < entries.length; i++) {
      size += JSON.stringify(entries[i]).length + 1;
      if (size > l.max_manifest_bytes) return i;
    }
    return n;
  }

  /**
   * Compare-and-swap of the head (spec §12.3 step 3). The commit holds
   * only if the blocks of unacked are there with their ETags: blocks the
   * change refers to whose writes are not answered yet (put commits
   * beside its last batches). Where they are not, or the commit cannot
   * check them, it throws UnackedError and applies nothing.
   */
  private async swap(s: Staged | undefined, roots?: RootRef[], unacked: Ref[] = []): Promise<void> {
    const h: Head = { ...this.head, index: this.head.index.slice(), roots: this.head.roots.slice() };
    h.generation = Math.max(this.head.generation, this.seenGen) + 1;
    if (s) {
      h.version = HEAD_VERSION;
      h.indexLen = 0;
      h.index = s.tree.dirs.map((d) => d.block);
    }
    if (roots) h.roots = roots;
    const data = this.encryptHead(h);
    let gone: Ref[] = s ? [...s.obsolete, ...unreferenced(this.index, s.next)] : [];
    const head: CommitItem = { id: this.headLoc.id, proof: this.headLoc.proof, data, cond: { ifMatch: this.etag }, etag: etagOf(data) };
    const checks: CommitItem[] = unacked.map((r) => ({ id: r.id, proof: writeProof(this.root.ownerSecret, r.id), check: true, cond: { ifMatch: r.etag } }));
    if (checks.length > 0 && !this.commitFits([head, ...checks])) throw new UnackedError();
    try {
      if (this.cfg.limits.max_batch_refs > 0) {
        let items: CommitItem[] = [head, ...checks, ...(s?.pending ?? []).map((it) => ({ id: it.id, proof: it.proof, data: it.data, cond: { createOnly: true }, etag: it.etag! }))];
        if (!this.commitFits(items)) {
          await this.writePending(s);
          items = [head, ...checks];
        }
        const dels: CommitItem[] = gone.map((r) => ({ id: r.id, proof: writeProof(this.root.ownerSecret, r.id), cond: { ifMatch: r.etag } }));
        const n = this.fitDeletions(items, dels);
        items = [...items, ...dels.slice(0, n)];
        gone = gone.slice(n);
        await this.remote.commit(items);
      } else {
        await this.writePending(s);
        await this.remote.put(head.id, head.proof, data, head.cond);
      }
    } catch (e) {
      if (isUnacked(e)) throw e;
      if (isPrecondition(e) && s) this.deleteRefs(s.written);
      if (kindOf(e) === "not found") throw new BlindError("auth", "the account no longer exists");
      throw wrap("network", "updating the account's head", e);
    }
    this.head = h;
    this.etag = head.etag!;
    this.seenGen = h.generation;
    if (s) {
      this.index = s.next;
      this.tree = s.tree;
      this.deleteRefs(gone);
    }
  }

  private async commit(next?: Index, roots?: RootRef[], unacked?: Ref[]): Promise<void> {
    return this.swap(next ? this.encryptIndex(next) : undefined, roots, unacked);
  }

  /**
   * Applies change to the index and commits it, merging on a lost race
   * (spec §12.3, §12.4); with unacked, as swap says.
   */
  private async update(change: (x: Index) => void, unacked?: Ref[]): Promise<Index> {
    let ours = cloneIndex(this.index);
    change(ours);
    ours.generation = this.index.generation + 1;
    const base = this.index;
    const firstOurs = ours;
    let lastErr: unknown;
    for (let i = 0; i < MAX_UPDATE_ATTEMPTS; i++) {
      try {
        await this.commit(ours, undefined, unacked);
        this.deleteRefs(unreferenced(firstOurs, ours));
        return ours;
      } catch (e) {
        if (!isPrecondition(e)) throw e;
        lastErr = e;
      }
      const theirsBase = this.index;
      await this.load();
      ours = merge(theirsBase, ours, this.index);
      if (mayBeDeleted(base, this.index, ours)) throw new BlindError("conflict", "another device changed or removed the same file meanwhile: try again");
    }
    throw new BlindError("conflict", "the index kept changing under this update (other devices are writing): try again", { cause: lastErr });
  }

  /** Deletes blocks in the background: unreferenced blocks expire anyway if it fails. */
  private deleteRefs(refs: Ref[]): void {
    if (refs.length === 0) return;
    void parallel(refs.length, this.remote.parallel, async (i) => {
      const r = refs[i]!;
      await this.remote.delete(r.id, writeProof(this.root.ownerSecret, r.id), r.etag).catch(() => {});
    });
  }

  /** Waits for nothing but lets background deletions of this tick start; for tests that count requests. */
  // --- files ---

  private fileRenewed(f: FileEntry): number {
    return Math.max(f.renewed, this.index.renewed);
  }

  private oldestRenewal(): number {
    let oldest = this.renewedAt;
    for (const f of this.index.files) oldest = Math.min(oldest, this.fileRenewed(f));
    return oldest;
  }

  async list(): Promise<FileInfo[]> {
    return this.index.files.map(infoOf);
  }

  /** The start of the first period in which something of the account may be purged. */
  safeUntil(): Date {
    return safeUntilOf(this.cfg, this.oldestRenewal());
  }

  async status(): Promise<Status> {
    const st: Status = {
      files: this.index.files.length,
      bytes: this.index.files.reduce((s, f) => s + f.size, 0),
      safeUntil: this.safeUntil(),
    };
    const cfg = await this.remote.config();
    if (cfg.tokens && this.remote.wallet) st.tokensLeft = this.remote.wallet.left(cfg);
    return st;
  }

  private lookupOrThrow(name: string): FileEntry {
    const f = lookup(this.index, name);
    if (!f) throw new BlindError("not found", `no file ${JSON.stringify(name)} in the account`);
    return f;
  }

  /** Stores data under name; an edit of an existing file sends only the chunks that changed. */
  async put(name: string, data: Source, opts?: { onProgress?: Progress; modified?: Date; mode?: number }): Promise<FileInfo> {
    checkName(name);
    return this.mu.run(async () => {
      const cur = await this.remote.currentPeriod();
      const prev = lookup(this.index, name);
      const { file, written, tail, unacked } = await this.upload(data, prev, opts?.onProgress);
      const ms = (opts?.modified ?? new Date()).getTime();
      file.name = name;
      file.mode = (opts?.mode ?? 0o644) & 0o777;
      file.mtimeSec = Math.floor(ms / 1000);
      file.mtimeNsec = (ms - file.mtimeSec * 1000) * 1e6;
      file.renewed = prev && written.length < file.chunks.length ? Math.min(cur, prev.renewed) : cur;
      // The index is committed while the last batches still wait in the
      // server's write pool, checking that their blocks are there once
      // the commit applies: both usually land in the same window, not
      // one window after the other. Where the server cannot check, or
      // should not (writes paid with tokens: a failed check spends one),
      // the data is waited for first.
      const change = (x: Index) => putReusing(x, file, written);
      const beside = this.cfg.limits.max_batch_refs > 0 && !this.cfg.tokens && this.cfg.limits.pool_window_seconds > 0;
      // Every batch answered, or the first batch's error, after which
      // nothing refers to the blocks written.
      const settled = async () => {
        const werr = await tail;
        if (werr === undefined) return;
        this.deleteRefs(written);
        throw werr;
      };
      if (!beside) await settled();
      let err: unknown;
      try {
        await this.update(change, beside ? unacked() : undefined);
      } catch (e) {
        err = e;
      }
      if (isUnacked(err)) {
        await settled();
        err = undefined;
        try {
          await this.update(change);
        } catch (e) {
          err = e;
        }
      } else {
        // Done already, unless the commit went beside. A commit that
        // checked the blocks found every one in place, even those whose
        // write answered an error: that error no longer matters then.
        await tail;
      }
      if (err !== undefined) {
        // Unless the update may have landed (a network failure after the
        // head was sent), nothing refers to the blocks written.
        if (kindOf(err) !== "network") this.deleteRefs(written);
        throw err;
      }
      return infoOf(file);
    });
  }

  /**
   * Chunks, seals and sends src. It returns once every batch is sent and
   * sealed, not answered: tail resolves when all are answered, to the
   * first batch's error or to undefined, and unacked gives the blocks of
   * the batches not answered yet (put commits beside them).
   */
  private async upload(
    src: Source,
    prev: FileEntry | undefined,
    onProgress?: Progress,
  ): Promise<{ file: FileEntry; written: Ref[]; tail: Promise<unknown>; unacked: () => Ref[] }> {
    const bs = this.cfg.block_size;
    const total = sourceSize(src);
    const reuse = new Map<string, Chunk[]>();
    let marks: MarkSet | undefined;
    let key: Uint8Array;
    if (prev && !prev.keyShared) {
      key = prev.key;
      marks = new MarkSet();
      for (const c of prev.chunks) {
        const k = c.size + ":" + hex(c.hash);
        reuse.set(k, [...(reuse.get(k) ?? []), c]);
        marks.add(c.mark);
      }
    } else {
      key = random(KEY_SIZE);
    }
    const file: FileEntry = { name: "", size: 0, mode: 0, mtimeSec: 0, mtimeNsec: 0, renewed: 0, hash: new Uint8Array(32), key, keyShared: false, inline: undefined, chunks: [], manifest: [] };

    // Small files go inline: read up to inlineMax + 1 bytes first.
    const it = pieces(src);
    const limit = inlineMax(bs);
    const head: Uint8Array[] = [];
    let headLen = 0;
    let eof = false;
    while (headLen <= limit) {
      const r = await it.next();
      if (r.done) {
        eof = true;
        break;
      }
      head.push(r.value.slice()); // a source may reuse its buffer for the next piece
      headLen += r.value.length;
    }
    if (eof) {
      const all = concat(...head);
      file.size = headLen;
      file.hash = sha256(all);
      if (headLen > 0) file.inline = all;
      onProgress?.(headLen, total);
      return { file, written: [], tail: Promise.resolve(undefined), unacked: () => [] };
    }
    async function* rest(): AsyncGenerator<Uint8Array> {
      yield* head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    }

    const written: Ref[] = [];
    const inFlight: Promise<void>[] = [];
    // The blocks of each batch sent and not answered yet.
    const waiting = new Set<Ref[]>();
    const sealingDone: Promise<unknown>[] = [];
    // Sealed blocks of the batches the server took, reused for the next
    // blocks: fresh memory costs a page fault per 4 KiB, and 64 KiB
    // arrays that die young are what most of an upload's GC time was.
    // (Blocks a worker seals come back in its own buffers.)
    const spare: Uint8Array[] = [];
    const spareMax = (UPLOADS_IN_FLIGHT + 1) * this.cfg.limits.write_batch;
    const work = this.remote.work;
    // The blocks of the batch being filled that a worker is sealing.
    let sealing: Promise<void>[] = [];
    let batch: BatchItem[] = [];
    let batchBytes = 0;
    let sent = 0;
    let failed: unknown;
    const flush = async () => {
      if (batch.length === 0) return;
      const items = batch;
      const bytes = batchBytes;
      const sealed = sealing;
      const refs = written.slice(written.length - items.length);
      batch = [];
      batchBytes = 0;
      sealing = [];
      waiting.add(refs);
      const sealedAll = Promise.all(sealed);
      sealingDone.push(sealedAll);
      const p = sealedAll
        .then(() => this.remote.putBatch(items))
        .then(
          () => {
            waiting.delete(refs);
            sent += bytes;
            onProgress?.(sent, total);
            // The server has all of these blocks: their buffers seal the next ones.
            if (!work) for (const it of items) if (spare.length < spareMax) spare.push(it.data);
          },
          (e) => {
            failed ??= e;
          },
        );
      inFlight.push(p);
      if (inFlight.length >= UPLOADS_IN_FLIGHT) await inFlight.shift();
    };
    try {
      const sum = await newFileHash();
      const hashOf = await sha256Hasher();
      const ch = new Chunker(rest(), this.table, payloadCapacity(bs), marks);
      for (let r = await ch.next(); r; r = await ch.next()) {
        if (failed !== undefined) break;
        const { chunk, mark } = r;
        sum.update(chunk);
        file.size += chunk.length;
        // The chunk's hash picks chunks of the old version to reuse;
        // a new file has none, and a pool hashes its chunks as it seals
        // them, off this thread.
        const inPool = work !== undefined && reuse.size === 0;
        const hash = inPool ? EMPTY : hashOf(chunk);
        const old = inPool ? undefined : reuse.get(chunk.length + ":" + hex(hash));
        if (old && old.length > 0) {
          const o = old.shift()!;
          ch.matched(true);
          file.chunks.push({ id: o.id, etag: o.etag, size: chunk.length, hash, mark });
          sent += chunk.length;
          onProgress?.(sent, total);
          continue;
        }
        ch.matched(false);
        const id = newID();
        const item: BatchItem = { id, proof: writeProof(this.root.ownerSecret, id), data: EMPTY, etag: EMPTY };
        const ref: Ref = { id, etag: EMPTY };
        const entry: Chunk = { id, etag: EMPTY, size: chunk.length, hash, mark };
        const set = (b: Sealed) => {
          item.data = b.data;
          item.etag = ref.etag = entry.etag = b.etag;
          if (inPool) {
            if (b.hash?.length !== 32) throw new BlindError("other", "the client's pool sealed a chunk without its hash");
            entry.hash = b.hash;
          }
        };
        // The chunk is a view of the chunker's buffer: a worker gets a copy.
        if (work) {
          const p = work.seal(key, id, chunk.slice(), bs, inPool).then(set);
          p.catch(() => {}); // surfaced by its batch's flush
          sealing.push(p);
        } else set(sealChunk(hashOf, key, id, chunk, bs, spare.pop()));
        batch.push(item);
        batchBytes += chunk.length;
        written.push(ref);
        file.chunks.push(entry);
        if (batch.length >= this.cfg.limits.write_batch) await flush();
      }
      if (failed === undefined) await flush();
      // A failure before the end stopped the chunker: the file is not
      // whole. Else the last batches may still be on their way, and the
      // caller may commit beside them once every block is sealed (its
      // ETag is in the file's entry).
      if (failed !== undefined) await Promise.all(inFlight);
      else await Promise.all(sealingDone);
      if (failed !== undefined) throw wrap("network", "uploading", failed);
      file.hash = sum.digest();
    } catch (e) {
      await Promise.allSettled([...inFlight, ...sealing]);
      this.deleteRefs(written);
      if (e instanceof BlindError) throw e;
      throw wrap("local i/o", "reading the file", e);
    }
    const tail = Promise.all(inFlight).then(() => (failed === undefined ? undefined : wrap("network", "uploading", failed)));
    return { file, written, tail, unacked: () => [...waiting].flat() };
  }

  /** The content of name, streamed: each chunk is checked before any of it is given out. */
  async get(name: string, opts?: { onProgress?: Progress }): Promise<ReadableStream<Uint8Array>> {
    const f = this.lookupOrThrow(name);
    return download(this.remote, this.cfg, f, opts?.onProgress);
  }

  rm(name: string): Promise<void> {
    return this.mu.run(async () => {
      await this.update((x) => {
        if (!removeFile(x, name)) throw new BlindError("not found", `no file ${JSON.stringify(name)} in the account`);
      });
    });
  }

  async mv(from: string, to: string): Promise<void> {
    checkName(to);
    return this.mu.run(async () => {
      await this.update((x) => renameFile(x, from, to));
    });
  }

  /** A capability for name (spec §11): sharing a shared file again gives the same one. */
  share(name: string): Promise<string> {
    return this.mu.run(async () => {
      const f = this.lookupOrThrow(name);
      if (f.manifest.length > 0) return capabilityString({ manifest: f.manifest[0]!.id, key: capKey(f.key, f.manifest[0]!.id) });
      const { refs, cap } = await this.writeManifest(f);
      try {
        await this.update((x) => {
          const g = lookup(x, name);
          if (!g || !equal(g.key, f.key)) throw new BlindError("conflict", `${JSON.stringify(name)} changed on another device while it was being shared: share it again`);
          if (g.manifest.length === 0) g.manifest = refs;
          g.keyShared = true;
        });
      } catch (e) {
        if (kindOf(e) !== "network") this.deleteRefs(refs);
        throw e;
      }
      const cur = lookup(this.index, name);
      if (cur && cur.manifest.length > 0 && !equal(cur.manifest[0]!.id, refs[0]!.id)) {
        this.deleteRefs(refs);
        return capabilityString({ manifest: cur.manifest[0]!.id, key: capKey(cur.key, cur.manifest[0]!.id) });
      }
      return capabilityString(cap);
    });
  }

  private async writeManifest(f: FileEntry): Promise<{ refs: Ref[]; cap: Capability }> {
    const m: FileEntry = { ...f, name: f.name.slice(f.name.lastIndexOf("/") + 1), manifest: [], renewed: 0, keyShared: false };
    const encoded = encodeLeafChecked([m]);
    const bs = this.cfg.block_size;
    const payloads = splitPadded(encoded, payloadCapacity(bs));
    if (pointerLen(payloads.length) > payloadCapacity(bs)) throw new BlindError("invalid", "the file has too many blocks to share with one manifest");
    const pid = newID();
    const key = capKey(f.key, pid);
    const items: BatchItem[] = [];
    const refs: Ref[] = [];
    for (const p of payloads) {
      const id = newID();
      const data = encryptBlock(key, id, p, bs);
      const etag = etagOf(data);
      items.push({ id, proof: writeProof(this.root.ownerSecret, id), data, etag });
      refs.push({ id, etag });
    }
    const pdata = encryptBlock(key, pid, marshalPointer(encoded.length, refs), bs);
    const all = [{ id: pid, etag: etagOf(pdata) }, ...refs];
    items.push({ id: pid, proof: writeProof(this.root.ownerSecret, pid), data: pdata });
    try {
      await this.remote.putBatch(items);
    } catch (e) {
      this.deleteRefs(all);
      throw wrap("network", "writing the share manifest", e);
    }
    return { refs: all, cap: { manifest: pid, key } };
  }

  // --- passwords (spec §12.5) ---

  private hasRoot(kind: number, id: Uint8Array): boolean {
    return this.head.roots.some((r) => r.kind === kind && equal(r.id, id));
  }

  passwd(oldPassword: string, newPassword: string, opts?: { deviceKey?: Uint8Array }): Promise<void> {
    return this.mu.run(async () => {
      const cur = await passwordLocator(this.user, oldPassword, opts?.deviceKey);
      if (!this.hasRoot(ROOT_PASSWORD, cur.id)) throw new BlindError("auth", "the current password (or user name) is wrong");
      const next = await passwordLocator(this.user, newPassword, opts?.deviceKey);
      if (equal(next.id, cur.id)) throw new BlindError("invalid", "the new password is the current one");
      await this.setPassword(next);
    });
  }

  /** @internal */
  async setPassword(loc: Locator): Promise<void> {
    const data = encryptBlock(loc.key, loc.id, marshalRoot(this.root), this.cfg.block_size);
    try {
      await this.remote.put(loc.id, loc.proof, data, { createOnly: true });
    } catch (e) {
      if (!isPrecondition(e)) throw wrap("network", "writing the new root", e);
      let same = false;
      try {
        const r = await readRoot(this.remote, loc);
        same = equal(r.accountKey, this.root.accountKey) && equal(r.ownerSecret, this.root.ownerSecret);
      } catch {
        /* not ours */
      }
      if (!same) throw new BlindError("conflict", "another account already uses this user name and password: choose another password");
    }
    let replaced: RootRef[] = [];
    for (let i = 0; i < MAX_UPDATE_ATTEMPTS; i++) {
      const roots: RootRef[] = [{ kind: ROOT_PASSWORD, id: loc.id, proof: loc.proof }];
      replaced = [];
      for (const r of this.head.roots) {
        if (equal(r.id, loc.id)) continue;
        if (r.kind === ROOT_PASSWORD) replaced.push(r);
        else roots.push(r);
      }
      try {
        await this.commit(undefined, roots);
        break;
      } catch (e) {
        if (!isPrecondition(e)) throw e;
        await this.load();
      }
    }
    if (!this.hasRoot(ROOT_PASSWORD, loc.id)) throw new BlindError("conflict", "the account kept changing while the password was changed: try again");
    for (const r of replaced) await this.remote.delete(r.id, r.proof).catch(() => {});
  }

  // --- renewal (spec §13) ---

  /** Renews what is stale; nothing at all when everything is current. */
  renew(): Promise<RenewReport> {
    return this.mu.run(() => this.renewLocked());
  }

  private async renewLocked(): Promise<RenewReport> {
    const cur = await this.remote.currentPeriod();
    const rep: RenewReport = { period: cur, sent: 0, renewed: 0, current: 0, missing: 0, damaged: [], safeUntil: this.safeUntil() };
    if (this.oldestRenewal() >= cur) return rep;
    const items: RenewItem[] = [];
    const owner = new Map<string, string>();
    for (const r of this.head.roots) items.push({ id: r.id, proof: renewProof(r.proof) });
    items.push({ id: this.headLoc.id, proof: renewProof(this.headLoc.proof) });
    const indexRefs = this.tree ? treeBlocks(this.tree) : this.head.index;
    for (const r of indexRefs) items.push({ id: r.id, proof: renewProof(writeProof(this.root.ownerSecret, r.id)) });
    const stale = new Set<string>();
    for (const f of this.index.files) {
      if (this.fileRenewed(f) >= cur) continue;
      stale.add(f.name);
      for (const r of refsOf(f)) {
        items.push({ id: r.id, proof: renewProof(writeProof(this.root.ownerSecret, r.id)) });
        owner.set(idString(r.id), f.name);
      }
    }
    shuffle(items);
    let res;
    try {
      res = await this.remote.renew(items);
    } catch (e) {
      throw wrap("network", "renewing", e);
    }
    rep.sent = items.length;
    rep.renewed = res.renewed;
    rep.current = res.current;
    const damaged = new Set<string>();
    let accountMissing = false;
    for (const id of [...res.missing, ...res.refused]) {
      rep.missing++;
      const name = owner.get(id.toLowerCase());
      if (name !== undefined) damaged.add(name);
      else accountMissing = true;
    }
    rep.damaged = [...damaged];
    this.renewedAt = cur;
    try {
      if (damaged.size === 0 && !accountMissing && this.index.files.length > 0) {
        await this.update((x) => {
          x.renewed = Math.max(x.renewed, cur);
        });
      } else if (stale.size > damaged.size) {
        await this.update((x) => {
          for (const f of x.files) if (stale.has(f.name) && !damaged.has(f.name) && f.renewed < cur) f.renewed = cur;
        });
      }
    } catch (e) {
      throw wrap("other", "recording the renewal in the index", e);
    }
    rep.safeUntil = this.safeUntil();
    return rep;
  }

  /** @internal Login's renewal: only when a period boundary has passed; out of tokens, reading still works. */
  async renewIfStale(): Promise<void> {
    const cur = await this.remote.currentPeriod();
    if (this.oldestRenewal() >= cur) return;
    try {
      await this.renew();
    } catch (e) {
      if (kindOf(e) !== "quota") throw e;
    }
  }
}

function mayBeDeleted(base: Index, theirs: Index, merged: Index): boolean {
  const gone = new Set(unreferenced(base, theirs).map((r) => hex(r.id)));
  if (gone.size === 0) return false;
  return merged.files.some((f) => refsOf(f).some((r) => gone.has(hex(r.id))));
}

/** Puts f into x, refusing when a chunk it reuses is not the current version's (put.go putReusing). */
function putReusing(x: Index, f: FileEntry, written: Ref[]): void {
  const mine = new Set(written.map((r) => hex(r.id)));
  let have: Set<string> | undefined;
  for (const c of f.chunks) {
    if (mine.has(hex(c.id))) continue;
    if (!have) {
      const old = lookup(x, f.name);
      have = new Set(old ? refsOf(old).map((r) => hex(r.id)) : []);
    }
    if (!have.has(hex(c.id))) throw new BlindError("conflict", `${JSON.stringify(f.name)} changed meanwhile: put it again`);
  }
  putFile(x, f);
}

function shuffle<T>(s: T[]): void {
  const r = new Uint32Array(s.length);
  globalThis.crypto.getRandomValues(r);
  for (let i = s.length - 1; i > 0; i--) {
    const j = r[i]! % (i + 1);
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
}

/** Reads and opens one block: a missing one is "not found" (gone says why), one that does not open is "tampered". */
async function openBlock(remote: Remote, id: Uint8Array, key: Uint8Array, blockSize: number, gone: string, what: string, hash = true): Promise<{ payload: Uint8Array; etag: Uint8Array }> {
  let got;
  try {
    got = await remote.get(id, { hash });
  } catch (e) {
    if (kindOf(e) === "not found") throw new BlindError("not found", gone);
    throw e;
  }
  try {
    return { payload: decryptBlock(key, id, got.data, blockSize), etag: got.etag };
  } catch (e) {
    throw wrap("tampered", what, e);
  } finally {
    // The payload is a copy (the AEAD's output), so the block is done with.
    remote.recycle(got.data);
  }
}

/** Streams a file's content; resolves once the first chunk is fetched and checked. */
async function download(remote: Remote, cfg: ServerConfig, f: FileEntry, onProgress?: Progress): Promise<ReadableStream<Uint8Array>> {
  if (f.inline || f.size === 0) {
    const c = f.inline ?? new Uint8Array();
    if (c.length !== f.size || !equal(sha256(c), f.hash)) throw new BlindError("tampered", "the file's content does not match its recorded hash");
    onProgress?.(f.size, f.size);
    return new ReadableStream<Uint8Array>({
      start(ctl) {
        if (c.length > 0) ctl.enqueue(c.slice());
        ctl.close();
      },
    });
  }
  if (f.chunks.reduce((s, c) => s + c.size, 0) !== f.size) throw new BlindError("tampered", "the file's chunks do not add up to its recorded size");
  const bs = cfg.block_size;
  const work = remote.work;
  const hashOf = work ? undefined : await sha256Hasher();
  // Chunks are read in groups: one request each where the server reads
  // several blocks a request, else one GET a chunk.
  const batch = Math.min(await remote.readBatch(), Math.max(1, Math.floor(READ_WINDOW_BYTES / READS_IN_FLIGHT / bs)));
  const group = Math.max(1, batch);
  const window = batch > 1 ? group * READS_IN_FLIGHT : Math.min(GET_WINDOW, remote.parallel * 2);
  // readChunks reads a group of one with a GET where the server has no read_batch.
  const fetchGroup = (cs: Chunk[]): Promise<Uint8Array[]> => (work ? work.readChunks(f.key, bs, cs) : readChunks(remote, hashOf!, f.key, bs, cs));
  const queue: Promise<Uint8Array>[] = [];
  let next = 0;
  let cancelled = false;
  const fill = () => {
    while (!cancelled && next < f.chunks.length && queue.length + Math.min(group, f.chunks.length - next) <= window) {
      const cs = f.chunks.slice(next, next + group);
      next += cs.length;
      const g = fetchGroup(cs);
      for (let k = 0; k < cs.length; k++) {
        const p = g.then((a) => a[k]!);
        p.catch(() => {}); // surfaced when its turn comes
        queue.push(p);
      }
    }
  };
  fill();
  const first = await queue.shift()!;
  let done = first.length;
  onProgress?.(done, f.size);
  let pendingFirst: Uint8Array | undefined = first;
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctl) {
        if (pendingFirst) {
          ctl.enqueue(pendingFirst);
          pendingFirst = undefined;
          fill();
          if (queue.length === 0) ctl.close();
          return;
        }
        fill();
        const p = queue.shift();
        if (!p) {
          ctl.close();
          return;
        }
        const b = await p; // a rejection errors the stream
        done += b.length;
        onProgress?.(done, f.size);
        ctl.enqueue(b);
        fill();
        if (queue.length === 0 && next >= f.chunks.length) ctl.close();
      },
      cancel() {
        cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
}

// --- the public functions of the brief ---

export async function signup(remote: Remote, user: string, password: string, opts?: { deviceKey?: Uint8Array }): Promise<{ account: Account; recoveryCode: string }> {
  const out = await Account.signup(remote, user, password, opts?.deviceKey);
  if (remote.wallet) await remote.wallet.refillAtLogin(remote);
  return out;
}

export async function login(remote: Remote, user: string, password: string, opts?: { deviceKey?: Uint8Array }): Promise<Account> {
  const loc = await passwordLocator(user, password, opts?.deviceKey);
  const a = await Account.loginLocator(remote, user, loc);
  if (remote.wallet) await remote.wallet.refillAtLogin(remote);
  await a.renewIfStale();
  return a;
}

export async function loginRecovery(remote: Remote, code: string, user: string, newPassword: string, opts?: { deviceKey?: Uint8Array }): Promise<Account> {
  const c = parseRecoveryCode(code);
  const next = await passwordLocator(user, newPassword, opts?.deviceKey);
  let root: Root;
  try {
    root = await readRoot(remote, recoveryLocator(c));
  } catch (e) {
    if (kindOf(e) === "auth") throw new BlindError("auth", "no account has this recovery code");
    throw e;
  }
  const a = await Account.open(remote, user, root);
  await a.setPassword(next);
  if (remote.wallet) await remote.wallet.refillAtLogin(remote);
  await a.renewIfStale();
  return a;
}

/** Opens a capability (spec §11.3): the shared file's name, size and content, checked as it streams. */
export async function fetchCapability(remote: Remote, cap: string, opts?: { onProgress?: Progress }): Promise<{ name: string; size: number; modified: Date; body: ReadableStream<Uint8Array> }> {
  const c = parseCapability(cap);
  const f = await openCapability(remote, c);
  const cfg = await remote.config();
  return { name: f.name, size: f.size, modified: infoOf(f).modified, body: await download(remote, cfg, f, opts?.onProgress) };
}

async function openCapability(remote: Remote, c: Capability): Promise<FileEntry> {
  const cfg = await remote.config();
  const bs = cfg.block_size;
  const { payload: ptr } = await openBlock(remote, c.manifest, c.key, bs, "the shared file is gone: its owner removed or replaced it, or it expired", "the share manifest (or a wrong capability key)");
  const { version, encodedLen, refs } = unmarshalPointer(ptr, bs);
  const payloads: Uint8Array[] = new Array(refs.length);
  await parallel(refs.length, remote.parallel, async (i) => {
    const got = await openBlock(remote, refs[i]!.id, c.key, bs, "part of the shared file's manifest is gone", "the share manifest");
    if (!equal(got.etag, refs[i]!.etag)) throw new BlindError("tampered", "the server returned another block than the share manifest lists");
    payloads[i] = got.payload;
  });
  let files: FileEntry[];
  try {
    const encoded = joinPadded(payloads, encodedLen);
    files = version === POINTER_V1 ? (await decodeV1(encoded)).files : decodeLeaf(encoded);
  } catch (e) {
    throw wrap("tampered", "the share manifest is malformed", e);
  }
  if (files.length !== 1) throw new BlindError("tampered", "the share manifest is malformed");
  return files[0]!;
}
