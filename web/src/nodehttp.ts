// A small HTTP/1.1 client over node:net for plain-HTTP servers in Node.
//
// Why not node:http: a get is one request per 64 KiB block, and in a
// short-lived process (a CLI command) node:http's per-request work, cold
// in the JIT, costs more than the block's crypto: measured on 1172 block
// GETs, 16 at a time, in a fresh process, node:http took 0.98 s of CPU,
// undici's Pool 0.86 s (plus 0.16 s to import it) and a plain socket that
// writes the request line and reads the answer into one reused buffer
// 0.23 s. This client is that plain socket, made whole: keep-alive
// connections, Content-Length, chunked and close-delimited bodies, 1xx
// answers skipped, timeouts. https keeps node:https (transport.ts).
//
// It speaks only what the client sends: a request line, Host, the
// caller's headers, Content-Length, and a body written at once. Anything
// in an answer that it cannot read exactly fails the request (and closes
// the connection), which the caller's retry loop treats as a transient
// failure.
import { concat } from "./bytes.js";
import type { Req, Resp, Transport } from "./transport.js";

// The parts of node:net used here, typed locally (the package builds
// without Node's types, and a browser bundle never reaches this code).
interface NodeSocket {
  write(b: Uint8Array | string, enc?: "latin1"): boolean;
  cork(): void;
  uncork(): void;
  destroy(e?: Error): void;
  setNoDelay(on: boolean): unknown;
  setTimeout(ms: number): unknown;
  ref(): unknown;
  unref(): unknown;
  on(ev: "connect" | "timeout" | "close" | "end", f: () => void): unknown;
  on(ev: "error", f: (e: Error) => void): unknown;
}
export interface NodeNet {
  connect(opts: { host: string; port: number; onread: { buffer: Uint8Array; callback: (n: number, buf: Uint8Array) => boolean } }): NodeSocket;
}

/** The most header bytes of an answer: as Go's DefaultMaxHeaderBytes. */
const MAX_HEAD = 1 << 20;
/** Bodies that declare their length up to this are read into one array of that length. */
const MAX_SIZED = 1 << 26;
const READ_BUFFER = 128 << 10;
/** The most bodies kept for reuse: a get's window of blocks in flight, and some. */
const POOLED = 64;
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

type State = "reading" | "done" | "failed";

/** Bodies handed back by their readers (Transport.recycle), of one size at a time. */
class BufferPool {
  private free: Uint8Array[] = [];
  private size = 0;
  take(n: number): Uint8Array {
    return n === this.size && this.free.length > 0 ? this.free.pop()! : new Uint8Array(n);
  }
  give(b: Uint8Array): void {
    // Only whole arrays: a view would hand out memory that others share.
    if (b.byteOffset !== 0 || b.byteLength !== b.buffer.byteLength || b.length < 4096) return;
    if (b.length !== this.size) {
      this.size = b.length;
      this.free = [];
    }
    if (this.free.length < POOLED) this.free.push(b);
  }
}

/** An answer being read: the Resp the caller holds, and where its body goes. */
class Answer {
  status = 0;
  headers = new Map<string, string>();
  private whole: Uint8Array | undefined;
  private parts: Uint8Array[] = [];
  private got = 0;
  private dropped = false;
  private want = -1; // the body's declared length, until its array is taken
  private sink: ((b: Uint8Array) => void) | undefined;
  state: State = "reading";
  private failure: Error | undefined;
  private waiters: [() => void, (e: Error) => void][] = [];

  constructor(private readonly pool: BufferPool) {}

  sizeHint(n: number): void {
    // Taken at the first byte of the body: a streamed one never needs it.
    if (n <= MAX_SIZED) this.want = n;
  }

  /** Takes bytes of the body; b is the connection's read buffer, reused after this returns. */
  take(b: Uint8Array): void {
    if (this.dropped || b.length === 0) return;
    if (this.sink) {
      this.sink(b);
      return;
    }
    if (this.want >= 0) {
      this.whole = this.pool.take(this.want);
      this.want = -1;
    }
    const w = this.whole;
    if (w && this.got + b.length <= w.length) {
      w.set(b, this.got);
    } else {
      if (w) {
        this.parts.push(w.subarray(0, this.got));
        this.whole = undefined;
      }
      this.parts.push(b.slice());
    }
    this.got += b.length;
  }

  settle(err?: Error): void {
    if (this.state !== "reading") return;
    this.state = err ? "failed" : "done";
    this.failure = err;
    for (const [ok, bad] of this.waiters.splice(0)) err ? bad(err) : ok();
  }

  private finished(): Promise<void> {
    if (this.state === "done") return Promise.resolve();
    if (this.state === "failed") return Promise.reject(this.failure!);
    return new Promise<void>((ok, bad) => this.waiters.push([ok, bad]));
  }

  resp(): Resp {
    const bytes = async (): Promise<Uint8Array> => {
      await this.finished();
      if (this.whole) return this.got === this.whole.length ? this.whole : this.whole.subarray(0, this.got);
      return this.parts.length === 1 ? this.parts[0]! : concat(...this.parts);
    };
    return {
      status: this.status,
      header: (name) => this.headers.get(name.toLowerCase()) ?? null,
      bytes,
      text: async () => utf8.decode(await bytes()),
      stream: async (sink) => {
        // What came before the sink did goes to it first.
        const held = this.whole ? [this.whole.subarray(0, this.got)] : this.parts;
        this.whole = undefined;
        this.parts = [];
        this.want = -1;
        for (const b of held) if (b.length > 0) sink(b);
        if (!this.dropped) this.sink = sink;
        await this.finished();
      },
      discard: async () => {
        // The rest is read and dropped, so that the connection stays usable.
        this.dropped = true;
        this.whole = undefined;
        this.parts = [];
        this.want = -1;
      },
    };
  }
}

type Phase = "idle" | "head" | "sized" | "chunk-size" | "chunk-data" | "chunk-crlf" | "trailers" | "until-close";

/** One keep-alive connection: one request at a time. */
class Conn {
  private readonly sock: NodeSocket;
  private phase: Phase = "idle";
  private head: Uint8Array[] = [];
  private headLen = 0;
  private left = 0; // bytes of the body (or chunk) still to come
  private answer: Answer | undefined;
  private resolve: ((r: Resp) => void) | undefined;
  private reject: ((e: Error) => void) | undefined;
  private noBody = false; // a HEAD request: its answers have none
  private streamed = false; // the answer will be streamed: no array of its length
  private keep = true;
  private line: number[] = []; // a chunk-size or trailer line in progress
  dead = false;

  constructor(
    net: NodeNet,
    host: string,
    port: number,
    private readonly timeoutMs: number,
    private readonly release: (c: Conn) => void,
    private readonly drop: (c: Conn) => void,
    private readonly pool: BufferPool,
  ) {
    this.sock = net.connect({
      host,
      port,
      onread: {
        buffer: new Uint8Array(READ_BUFFER),
        callback: (n, buf) => {
          try {
            this.feed(buf.subarray(0, n));
          } catch (e) {
            this.fail(e instanceof Error ? e : new Error(String(e)));
          }
          return true; // go on reading
        },
      },
    });
    this.sock.setNoDelay(true);
    this.sock.on("error", (e) => this.fail(e));
    this.sock.on("timeout", () => this.fail(new Error(`no answer in ${this.timeoutMs / 1000} s`)));
    this.sock.on("end", () => this.closed());
    this.sock.on("close", () => this.closed());
  }

  /** Sends a request (its head as built by requestHead, then its body) and reads the answer. */
  send(r: Req, h: string): Promise<Resp> {
    return new Promise<Resp>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.phase = "head";
      this.noBody = r.method === "HEAD";
      this.streamed = !!r.streamed;
      this.keep = true;
      this.sock.ref();
      this.sock.setTimeout(this.timeoutMs);
      this.sock.cork();
      this.sock.write(h, "latin1");
      for (const b of r.body ?? []) if (b.length > 0) this.sock.write(b);
      this.sock.uncork();
    });
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.sock.destroy();
    const reject = this.reject;
    this.resolve = this.reject = undefined;
    this.answer?.settle(e);
    this.answer = undefined;
    reject?.(e);
    this.drop(this);
  }

  private closed(): void {
    if (this.dead) return;
    if (this.phase === "until-close") {
      // The close is the end of this body: the answer is whole.
      this.answer?.settle();
      this.answer = undefined;
      this.reject = undefined;
      this.phase = "idle";
    }
    this.fail(new Error("the connection closed before the whole answer came"));
  }

  private feed(b: Uint8Array): void {
    let o = 0;
    while (o < b.length) {
      switch (this.phase) {
        case "idle":
          throw new Error("the server sent bytes nobody asked for");
        case "head":
          o = this.readHead(b, o);
          break;
        case "sized": {
          const k = Math.min(this.left, b.length - o);
          this.answer!.take(b.subarray(o, o + k));
          o += k;
          this.left -= k;
          if (this.left === 0) this.done();
          break;
        }
        case "until-close":
          this.answer!.take(b.subarray(o));
          o = b.length;
          break;
        case "chunk-data": {
          const k = Math.min(this.left, b.length - o);
          this.answer!.take(b.subarray(o, o + k));
          o += k;
          this.left -= k;
          if (this.left === 0) this.phase = "chunk-crlf";
          break;
        }
        case "chunk-size":
        case "chunk-crlf":
        case "trailers": {
          const x = b[o++]!;
          if (x !== 0x0a) {
            if (this.line.length > 4096) throw new Error("a chunked answer has an overlong line");
            this.line.push(x);
            break;
          }
          if (this.line[this.line.length - 1] !== 0x0d) throw new Error("a chunked answer has a bare LF");
          const line = String.fromCharCode(...this.line.slice(0, -1));
          this.line = [];
          this.chunkLine(line);
          break;
        }
      }
    }
  }

  private chunkLine(line: string): void {
    if (this.phase === "chunk-crlf") {
      if (line !== "") throw new Error("a chunk of the answer is longer than it said");
      this.phase = "chunk-size";
    } else if (this.phase === "chunk-size") {
      const m = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?$/.exec(line);
      if (!m) throw new Error("a chunked answer has a malformed chunk size");
      this.left = parseInt(m[1]!, 16);
      this.phase = this.left === 0 ? "trailers" : "chunk-data";
    } else if (line === "") {
      this.done();
    }
  }

  /** Reads header bytes from b at o; returns where the body starts (or b.length). */
  private readHead(b: Uint8Array, o: number): number {
    // The usual case: the whole head in this read, nothing held before.
    if (this.headLen === 0) {
      const end = headEnd(b, o);
      if (end >= 0) {
        this.startAnswer(latin1.decode(b.subarray(o, end)));
        return end + 4;
      }
    }
    // The end of the head may straddle reads: look in what is held too.
    const held = this.headLen;
    const all = held === 0 ? b.slice(o) : concat(this.head[0]!, b.subarray(o));
    const end = headEnd(all, Math.max(0, held - 3));
    if (end < 0) {
      if (all.length > MAX_HEAD) throw new Error("the answer's header is too large");
      this.head = [all];
      this.headLen = all.length;
      return b.length;
    }
    this.head = [];
    this.headLen = 0;
    this.startAnswer(latin1.decode(all.subarray(0, end)));
    return o + (end + 4 - held);
  }

  private startAnswer(text: string): void {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.([01]) ([0-9]{3})(?: .*)?$/.exec(lines[0]!);
    if (!m) throw new Error("the server's answer is not HTTP/1.1");
    const status = Number(m[2]);
    const a = new Answer(this.pool);
    a.status = status;
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c <= 0 || /[ \t]/.test(l[c - 1]!)) throw new Error("the server's answer has a malformed header line");
      const name = l.slice(0, c).toLowerCase();
      const value = l.slice(c + 1).trim();
      const had = a.headers.get(name);
      a.headers.set(name, had === undefined ? value : had + ", " + value);
    }
    if (status >= 100 && status < 200) {
      if (status === 101) throw new Error("the server switched protocols");
      return; // an interim answer: the real one follows
    }
    const conn = (a.headers.get("connection") ?? "").toLowerCase();
    if (m[1] === "0" ? !/\bkeep-alive\b/.test(conn) : /\bclose\b/.test(conn)) this.keep = false;
    const te = a.headers.get("transfer-encoding");
    const cl = a.headers.get("content-length");
    this.answer = a;
    const resolve = this.resolve!;
    this.resolve = undefined;
    if (this.noBody || status === 204 || status === 304) {
      this.phase = "sized";
      this.left = 0;
    } else if (te !== undefined) {
      if (te.toLowerCase() !== "chunked") throw new Error(`the server's answer has a transfer coding this client does not read (${te.slice(0, 40)})`);
      this.phase = "chunk-size";
      this.keep &&= cl === undefined;
    } else if (cl !== undefined) {
      if (!/^[0-9]{1,15}$/.test(cl)) throw new Error("the server's answer has a malformed Content-Length");
      this.left = Number(cl);
      this.phase = "sized";
      // The start of the body may come with the head, before the reader
      // can say it streams: the request said so.
      if (!this.streamed) a.sizeHint(this.left);
    } else {
      this.phase = "until-close";
      this.keep = false;
    }
    resolve(a.resp());
    if (this.phase === "sized" && this.left === 0) this.done();
  }

  /** The answer is whole: the connection goes back to the pool, or is closed. */
  private done(): void {
    const a = this.answer!;
    this.answer = undefined;
    this.reject = undefined;
    this.phase = "idle";
    if (this.keep) {
      this.sock.setTimeout(0);
      this.sock.unref();
      this.release(this);
    } else {
      this.dead = true;
      this.sock.destroy();
      this.drop(this);
    }
    a.settle();
  }
}

/** Where the first CRLF CRLF in b at or after from starts, or -1. */
function headEnd(b: Uint8Array, from: number): number {
  for (let i = b.indexOf(0x0d, from); i >= 0 && i + 3 < b.length; i = b.indexOf(0x0d, i + 1)) {
    if (b[i + 1] === 0x0a && b[i + 2] === 0x0d && b[i + 3] === 0x0a) return i;
  }
  return -1;
}

/** The request line and header of r, or an error for a header that would break the request's framing. */
function requestHead(r: Req, path: string, hostHeader: string): string {
  let length = 0;
  for (const b of r.body ?? []) length += b.length;
  let h = `${r.method} ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\n`;
  for (const [k, v] of Object.entries(r.headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || /[\0\r\n]/.test(v)) throw new Error(`header ${JSON.stringify(k)} is not a valid header`);
    const lk = k.toLowerCase();
    if (lk === "content-length" || lk === "host" || lk === "connection" || lk === "transfer-encoding") continue;
    h += `${k}: ${v}\r\n`;
  }
  if (r.body || r.method === "PUT" || r.method === "POST") h += `Content-Length: ${length}\r\n`;
  return h + "\r\n";
}

/** The node:net transport for an http:// server, or undefined when url is not one. */
export function netTransport(net: NodeNet, url: string, timeoutMs: number): Transport | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" || u.username || u.password) return undefined;
  const origin = u.origin;
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : 80;
  // Idle connections, most recently used last; they do not keep the process alive.
  const idle: Conn[] = [];
  const release = (c: Conn) => idle.push(c);
  const drop = (c: Conn) => {
    const i = idle.indexOf(c);
    if (i >= 0) idle.splice(i, 1);
  };
  const pool = new BufferPool();
  const t: Transport = async (r) => {
    // Requests of the API all go to the server's origin; the path is what follows it.
    let path: string;
    if (r.url.startsWith(origin) && r.url[origin.length] === "/") path = r.url.slice(origin.length);
    else {
      const ru = new URL(r.url);
      if (ru.origin !== origin) throw new Error(`a request for ${ru.origin} through the transport of ${origin}`);
      path = ru.pathname + ru.search;
    }
    const head = requestHead(r, path, u.host);
    let c = idle.pop();
    while (c?.dead) c = idle.pop();
    c ??= new Conn(net, host, port, timeoutMs, release, drop, pool);
    return c.send(r, head);
  };
  t.recycle = (b) => pool.give(b);
  return t;
}
