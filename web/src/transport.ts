// How a request reaches the server. Browsers (and any caller that gives its
// own fetch) go through fetch. Node goes through a plain socket to an
// http:// server (nodehttp.ts) and node:https to an https:// one: its
// fetch (undici) spends more CPU per request than the request's crypto
// does for a 64 KiB block, and a get is one request per block.
import { concat } from "./bytes.js";
import { netTransport, type NodeNet } from "./nodehttp.js";
import { nodeBuiltin } from "./platform.js";

/** A request of the block API: the body is sent as the concatenation of its parts. */
export interface Req {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: Uint8Array[];
  /** The answer will be read with stream, not gathered: the transport then sets no array aside for it. */
  streamed?: boolean;
}

/** What the client reads of an answer. */
export interface Resp {
  status: number;
  header(name: string): string | null;
  /** The whole body. */
  bytes(): Promise<Uint8Array>;
  text(): Promise<string>;
  /**
   * The body as it comes, piece by piece, instead of whole: an answer of
   * many blocks is then read and checked while the rest is on its way,
   * and never held whole. A piece is the sink's only until it returns
   * (the transport may reuse its memory); the sink must not throw.
   * Resolves at the end of the body, rejects when it breaks off.
   */
  stream(sink: (piece: Uint8Array) => void): Promise<void>;
  /** Drops the body unread (so that the connection can be reused). */
  discard(): Promise<void>;
}

export type Transport = ((r: Req) => Promise<Resp>) & {
  /**
   * Takes back an answer's body that its reader is done with (no
   * reference to it remains), to read a later answer of the same size
   * into: fresh memory costs a page fault per 4 KiB, and a get reads a
   * 64 KiB block per request. Transports without it let the GC have it.
   */
  recycle?(b: Uint8Array): void;
};

/**
 * A transport over a fetch function. Every answer of the API is no-store,
 * and so is every request: a browser then skips its HTTP cache (a lookup
 * on the network service's threads for each block otherwise).
 */
export function fetchTransport(fetchFn: typeof fetch): Transport {
  return async (r) => {
    let body: BodyInit | undefined;
    // A body of several parts goes as a Blob: the same 4 MiB batches sent
    // as one ArrayBuffer made a 64 MiB upload in Chromium 5 times slower
    // (16.7 and 20.5 s against 3.4 and 3.5 s, web/app/bench/probe.ts).
    if (r.body) body = r.body.length === 1 ? (r.body[0] as Uint8Array<ArrayBuffer>) : new Blob(r.body as Uint8Array<ArrayBuffer>[]);
    const resp = await fetchFn(new Request(r.url, { method: r.method, headers: r.headers, cache: "no-store", ...(body !== undefined ? { body } : {}) }));
    return {
      status: resp.status,
      header: (name) => resp.headers.get(name),
      bytes: async () => new Uint8Array(await resp.arrayBuffer()),
      text: () => resp.text(),
      stream: async (sink) => {
        if (!resp.body) return;
        const reader = resp.body.getReader();
        for (;;) {
          const r = await reader.read();
          if (r.done) return;
          sink(r.value);
        }
      },
      discard: async () => {
        await resp.body?.cancel();
      },
    };
  };
}

// The parts of node:http(s) used here, typed locally: the package builds
// without Node's types, and a browser bundle never reaches this code.
interface NodeIncoming {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  on(ev: "data", f: (b: Uint8Array) => void): NodeIncoming;
  on(ev: "end", f: () => void): NodeIncoming;
  on(ev: "error" | "aborted", f: (e?: Error) => void): NodeIncoming;
  resume(): void;
  destroy(e?: Error): void;
}
interface NodeClientRequest {
  on(ev: "error", f: (e: Error) => void): NodeClientRequest;
  setTimeout(ms: number, f: () => void): unknown;
  write(b: Uint8Array): boolean;
  end(): void;
  destroy(e?: Error): void;
}
interface NodeHTTP {
  Agent: new (opts: { keepAlive: boolean; maxFreeSockets?: number; timeout?: number }) => unknown;
  request(url: string, opts: { method: string; headers: Record<string, string>; agent: unknown }, cb: (res: NodeIncoming) => void): NodeClientRequest;
}

// As undici's default headers and body timeouts: a stalled server fails
// the request (which is then retried) instead of hanging.
const NODE_TIMEOUT_MS = 300_000;

/** Node's transport for url, or undefined outside Node (see platform.ts). */
export function nodeTransport(url: string): Transport | undefined {
  if (url.startsWith("http:")) {
    const net = nodeBuiltin<NodeNet>("node:net");
    const t = net && typeof net.connect === "function" ? netTransport(net, url, NODE_TIMEOUT_MS) : undefined;
    if (t) return t;
  }
  return nodeHTTPTransport(url);
}

/** The node:http(s) transport, or undefined outside Node. */
export function nodeHTTPTransport(url: string): Transport | undefined {
  const mod = nodeBuiltin<NodeHTTP>(url.startsWith("https:") ? "node:https" : "node:http");
  if (!mod || typeof mod.request !== "function") return undefined;
  const http = mod;
  // Idle keep-alive sockets do not keep the process alive (Node unrefs them).
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
  return (r) =>
    new Promise<Resp>((resolve, reject) => {
      const headers = { ...r.headers };
      let length = 0;
      for (const b of r.body ?? []) length += b.length;
      if (r.body || r.method === "PUT" || r.method === "POST") headers["Content-Length"] = String(length);
      const req = http.request(r.url, { method: r.method, headers, agent }, (res) => {
        // The body is read as it comes, into one array when its length is known.
        const declared = Number(res.headers["content-length"]);
        const sized = Number.isSafeInteger(declared) && declared >= 0 && declared <= 1 << 26;
        // Allocated at the first byte: a streamed body never needs it.
        let whole: Uint8Array | undefined;
        let pending = sized && !r.streamed;
        const parts: Uint8Array[] = [];
        let got = 0;
        let state: "reading" | "done" | "failed" = "reading";
        let failure: Error | undefined;
        const waiters: [() => void, (e: Error) => void][] = [];
        let sink: ((b: Uint8Array) => void) | undefined;
        const settle = () => {
          for (const [ok, bad] of waiters.splice(0)) state === "done" ? ok() : bad(failure!);
        };
        res.on("data", (b) => {
          if (sink) {
            sink(b);
            return;
          }
          if (pending) {
            pending = false;
            whole = new Uint8Array(declared);
          }
          if (whole && got + b.length <= whole.length) whole.set(b, got);
          else {
            if (whole) {
              parts.push(whole.subarray(0, got));
              whole = undefined;
            }
            parts.push(b);
          }
          got += b.length;
        });
        res.on("end", () => {
          state = "done";
          settle();
        });
        const fail = (e?: Error) => {
          if (state !== "reading") return;
          state = "failed";
          failure = e ?? new Error("the connection closed before the whole answer came");
          settle();
        };
        res.on("error", fail);
        res.on("aborted", () => fail());
        const finished = () =>
          state === "reading"
            ? new Promise<void>((ok, bad) => waiters.push([ok, bad]))
            : state === "done"
              ? Promise.resolve()
              : Promise.reject(failure!);
        const bytes = async () => {
          await finished();
          if (whole) return got === whole.length ? whole : whole.subarray(0, got);
          return concat(...parts);
        };
        resolve({
          status: res.statusCode ?? 0,
          header: (name) => {
            const v = res.headers[name.toLowerCase()];
            return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
          },
          bytes,
          text: async () => new TextDecoder().decode(await bytes()),
          stream: async (f) => {
            // What came before the sink did goes to it first.
            const held = whole ? [whole.subarray(0, got)] : parts.splice(0);
            whole = undefined;
            pending = false;
            for (const b of held) if (b.length > 0) f(b);
            sink = f;
            await finished();
          },
          discard: async () => {
            if (state === "reading") res.resume();
          },
        });
      });
      req.on("error", reject);
      req.setTimeout(NODE_TIMEOUT_MS, () => req.destroy(new Error(`no answer in ${NODE_TIMEOUT_MS / 1000} s`)));
      for (const b of r.body ?? []) req.write(b);
      req.end();
    });
}
