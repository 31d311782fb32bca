// The Web Worker that runs the whole client: Argon2id, the keys, the
// encryption and every request to the server happen here, off the page's
// thread. It holds at most one account; the page asks by message
// (protocol.ts).
import { Account, BlindError, fetchCapability, login, loginRecovery, Remote, signup } from "../../src/index.js";
import { TokenWallet } from "../../src/tokens.js";
import type { Pool } from "../../src/pool.js";
import { newPool } from "./pool.js";
import { type Download, type OpName, type Ops, PORT_WINDOW, type PortCredit, type PortPiece, type Reply, type Request } from "./protocol.js";

declare const self: DedicatedWorkerGlobalScope;

const server = self.location.origin;
let remote: Remote | undefined;
let account: Account | undefined;
let remember = false;
// Account keeps its user name private; the page shows the one logged in with.
let userName = "";
let shared: ReadableStream<Uint8Array> | undefined;

// A download leaves this worker as a transferred stream that the page
// hands on to the Service Worker: every piece is a message across two
// threads. Pieces of 1 MiB instead of one per block (64 KiB) make 64
// messages of a 64 MiB file instead of about a thousand; two of them
// queued ahead keep the memory bound at a few MiB.
const PIECE = 1 << 20;

/** src in pieces of PIECE bytes (the last one shorter). */
function coalesce(src: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = src.getReader();
  let carry: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctl) {
        const out = new Uint8Array(PIECE);
        let n = 0;
        while (n < PIECE) {
          let b = carry;
          carry = undefined;
          if (!b) {
            const r = await reader.read();
            if (r.done) break;
            b = r.value;
          }
          const take = Math.min(b.length, PIECE - n);
          out.set(b.subarray(0, take), n);
          n += take;
          if (take < b.length) carry = b.subarray(take);
        }
        if (n > 0) ctl.enqueue(n === PIECE ? out : out.slice(0, n));
        if (n < PIECE) ctl.close();
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 2 },
  );
}

// The pool that seals and reads file blocks beside this worker: one
// worker a core (at most 4), started at the first put or get.
let pool: Pool | undefined;
function withPool(r: Remote): Remote {
  if (typeof Worker === "function") r.work = pool ??= newPool(Math.min(4, Math.max(1, navigator.hardwareConcurrency || 2)), new Remote(server));
  return r;
}

/** A Remote with a wallet when the server charges; invite may be "" on a resumed session. */
async function newRemote(invite: string): Promise<Remote> {
  const r = withPool(new Remote(server));
  const cfg = await r.config();
  if (cfg.tokens) r.wallet = new TokenWallet(invite.trim() ? { invite } : undefined);
  return r;
}

/** The session to keep in localStorage when "remember this device" is on. */
function session(): string | undefined {
  return remember && account ? account.exportState() : undefined;
}

function need(): Account {
  if (!account) throw new BlindError("auth", "not logged in");
  return account;
}

type Handlers = { [K in OpName]: (progress: (sent: number, total?: number) => void, ...args: Parameters<Ops[K]>) => Promise<ReturnType<Ops[K]>> };

const handlers: Handlers = {
  async config() {
    const cfg = await new Remote(server).config();
    return { charges: !!cfg.tokens };
  },
  async signup(_p, user, password, invite, keep) {
    remote = await newRemote(invite);
    const r = await signup(remote, user, password);
    account = r.account;
    userName = user;
    remember = keep;
    return { recoveryCode: r.recoveryCode, session: session() };
  },
  async login(_p, user, password, invite, keep) {
    remote = await newRemote(invite);
    account = await login(remote, user, password);
    userName = user;
    remember = keep;
    return { session: session() };
  },
  async recover(_p, code, user, newPassword, invite, keep) {
    remote = await newRemote(invite);
    account = await loginRecovery(remote, code, user, newPassword);
    userName = user;
    remember = keep;
    return { session: session() };
  },
  async resume(_p, state) {
    remote = await newRemote("");
    account = await Account.resume(remote, state);
    userName = String((JSON.parse(state) as { user?: unknown }).user ?? "");
    remember = true;
    return { session: account.exportState() };
  },
  async overview() {
    const a = need();
    const [files, st] = await Promise.all([a.list(), a.status()]);
    const cfg = await remote!.config();
    return {
      user: userName,
      files: files.map((f) => ({ name: f.name, size: f.size, modified: f.modified.getTime() })),
      bytes: st.bytes,
      safeUntil: st.safeUntil.getTime(),
      ...(st.tokensLeft !== undefined ? { tokensLeft: st.tokensLeft } : {}),
      charges: !!cfg.tokens,
    };
  },
  async put(progress, name, file) {
    await need().put(name, file, {
      onProgress: progress,
      ...(file instanceof File && file.lastModified ? { modified: new Date(file.lastModified) } : {}),
    });
    return { session: session() };
  },
  async get(_p, name, to) {
    const a = need();
    const f = (await a.list()).find((x) => x.name === name);
    const body = await a.get(name);
    const size = f?.size ?? 0;
    // Pieces go to the page gathered (a transferred stream copies each
    // one), to the Service Worker as they are, by transfer.
    if (!to) return { body: coalesce(body), size };
    send(to, { body, size });
    return { size };
  },
  async rm(_p, name) {
    await need().rm(name);
    return { session: session() };
  },
  async mv(_p, from, to) {
    await need().mv(from, to);
    return { session: session() };
  },
  async share(_p, name) {
    return { capability: await need().share(name) };
  },
  async openShared(_p, cap) {
    const r = await fetchCapability(remote ?? withPool(new Remote(server)), cap);
    shared = r.body;
    return { name: r.name, size: r.size };
  },
  async takeShared(_p, to) {
    if (!shared) throw new BlindError("invalid", "open the shared file first");
    const body = shared;
    shared = undefined;
    if (!to) return { body: coalesce(body) };
    send(to, { body });
    return {};
  },
  async logout() {
    account = undefined;
    remote = undefined;
    userName = "";
    remember = false;
    return {};
  },
};

/** A download straight to the Service Worker's end of a port (see PortPiece). */
function send(to: MessagePort, d: Download): void {
  let credit = PORT_WINDOW;
  let wake: (() => void) | undefined;
  to.onmessage = (e: MessageEvent<PortCredit>) => {
    credit += e.data.credit;
    wake?.();
  };
  to.postMessage({ head: true, ...(d.size !== undefined ? { size: d.size } : {}) } satisfies PortPiece);
  const reader = d.body.getReader();
  void (async () => {
    try {
      for (;;) {
        while (credit <= 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const { value, done } = await reader.read();
        if (done) break;
        // A piece goes with its whole buffer when it is most of it (a
        // chunk opened in a buffer of its own, past the frame's length):
        // no other piece can then lie in that buffer. Else as a copy.
        const own = 2 * value.byteLength > value.buffer.byteLength ? value : value.slice();
        credit -= own.length;
        to.postMessage({ piece: own } satisfies PortPiece, [own.buffer as ArrayBuffer]);
      }
      to.postMessage({ end: true } satisfies PortPiece);
    } catch (e) {
      to.postMessage({ error: e instanceof Error ? e.message : String(e) } satisfies PortPiece);
      void reader.cancel().catch(() => {});
    }
  })();
}

/** Streams in an answer go to the page by transfer, not by copy. */
function transferables(v: unknown): Transferable[] {
  if (v && typeof v === "object") {
    return Object.values(v).filter((x): x is ReadableStream => x instanceof ReadableStream);
  }
  return [];
}

self.onmessage = async (ev: MessageEvent<Request>) => {
  const { id, op, args } = ev.data;
  const post = (r: Reply, t: Transferable[] = []) => self.postMessage(r, t);
  let last = 0;
  const progress = (sent: number, total?: number) => {
    // A message per block would flood the page; ten a second is smooth.
    const now = performance.now();
    if (now - last < 100 && sent !== total) return;
    last = now;
    post({ id, progress: { sent, ...(total !== undefined ? { total } : {}) } });
  };
  try {
    const h = handlers[op] as (p: typeof progress, ...a: unknown[]) => Promise<unknown>;
    const value = await h(progress, ...(args as unknown[]));
    post({ id, ok: true, value }, transferables(value));
  } catch (e) {
    const kind = e instanceof BlindError ? e.kind : "other";
    const message = e instanceof Error ? e.message : String(e);
    post({ id, ok: false, kind, message });
  }
};
