// Test harness: builds (or finds) the Go binaries, starts blindstored and
// its issuer on 127.0.0.1 with temporary data, runs the blind CLI, and a
// small HTTP proxy that counts block writes and can tamper with reads.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import http from "node:http";
import { promisify } from "node:util";

const exec = promisify(execFile);
export const repoRoot = resolve(new URL("../..", import.meta.url).pathname);

/** Under CI a missing tool fails; elsewhere the caller may skip (internal/testenv's rule). */
export function required(): boolean {
  return !!process.env.CI || process.env.BLINDSTORE_REQUIRE_SERVICES === "1";
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let binDir: Promise<string> | undefined;

/** The directory holding blind and blindstored: BLINDSTORE_BIN, or a fresh `go build`. */
export function binaries(): Promise<string> {
  binDir ??= (async () => {
    const given = process.env.BLINDSTORE_BIN;
    if (given) {
      for (const b of ["blind", "blindstored"]) {
        if (!existsSync(join(given, b))) throw new Error(`BLINDSTORE_BIN=${given} has no ${b}`);
      }
      return given;
    }
    const dir = tempDir("blindstore-bin-");
    await exec("go", ["build", "-o", dir + "/", "./cmd/blind", "./cmd/blindstored"], { cwd: repoRoot, maxBuffer: 16 << 20 });
    return dir;
  })();
  return binDir;
}

export interface Proc {
  url: string;
  child: ChildProcess;
  logs: string[];
  stop(): Promise<void>;
}

/** Starts a blindstored command and waits for the url= it logs. */
export async function startProc(args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const bin = join(await binaries(), "blindstored");
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error("blindstored did not log its URL in 60 s:\n" + logs.join(""))), 60_000);
    const onData = (b: Buffer) => {
      const s = b.toString();
      logs.push(s);
      const m = /url=(https?:\/\/127\.0\.0\.1:\d+)/.exec(logs.join(""));
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`blindstored exited (${code}) before it logged its URL:\n` + logs.join("")));
    });
  });
  return {
    url,
    child,
    logs,
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once("exit", () => res());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
      }),
  };
}

export interface Server {
  url: string;
  dir: string;
  proc: Proc;
  issuer?: { url: string; dir: string; proc: Proc };
  stop(): Promise<void>;
}

/** blindstored serve on 127.0.0.1 with a temporary embedded store (and an issuer if asked). */
export async function startServer(opts: { blockSize?: number; issuer?: boolean; poolWindow?: string } = {}): Promise<Server> {
  const dir = tempDir("blindstored-");
  let issuer: Server["issuer"];
  const extra: string[] = [];
  if (opts.issuer) {
    const idir = tempDir("blindstored-issuer-");
    const proc = await startProc(["issuer", "--listen", "127.0.0.1:0", "--data", idir]);
    issuer = { url: proc.url, dir: idir, proc };
    extra.push("--token-issuer", proc.url);
  }
  const proc = await startProc([
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--data",
    dir,
    "--block-size",
    String(opts.blockSize ?? 16384),
    "--pool-window",
    opts.poolWindow ?? "5ms",
    ...extra,
  ]);
  return {
    url: proc.url,
    dir,
    proc,
    ...(issuer ? { issuer } : {}),
    async stop() {
      await proc.stop();
      if (issuer) await issuer.proc.stop();
      rmSync(dir, { recursive: true, force: true });
      if (issuer) rmSync(issuer.dir, { recursive: true, force: true });
    },
  };
}

/** An invite code worth n tokens a period, from the server's issuer. */
export async function invite(s: Server, n: number): Promise<string> {
  const bin = join(await binaries(), "blindstored");
  const { stdout } = await exec(bin, ["issuer", "invite", "--data", s.issuer!.dir, "--tokens", String(n)]);
  return stdout.trim();
}

export interface BlindResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the blind CLI with its own configuration directory. */
export async function blind(configDir: string, args: string[], env: Record<string, string> = {}): Promise<BlindResult> {
  const bin = join(await binaries(), "blind");
  return new Promise((res) => {
    execFile(
      bin,
      args,
      { env: { ...process.env, BLIND_CONFIG_DIR: configDir, BLIND_NO_PROGRESS: "yes", ...env }, maxBuffer: 64 << 20, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}

export async function blindOK(configDir: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await blind(configDir, args, env);
  if (r.code !== 0) throw new Error(`blind ${args.join(" ")}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** What went through a proxy: block writes (data entries of batches and PUTs), and reads. */
export interface Counts {
  blockPuts: number; // blocks created by non-atomic batches and PUTs without If-Match
  atomicWrites: number; // blocks written in atomic batches (index and head)
  commits: number; // atomic batches
  checks: number; // check entries of atomic batches (blocks a commit holds to be written)
  gets: number; // GET /v1/blocks/{id}
  reads: number; // POST /v1/read requests
  readBlocks: number; // ids they named
}

export interface Proxy {
  url: string;
  counts: Counts;
  reset(): void;
  /** Flips one byte of every block served (by GET, or in a record of POST /v1/read). */
  tamper: boolean;
  /** The next this many answers of POST /v1/read are cut off halfway (the connection closed). */
  cutReads: number;
  /** Takes read_batch out of the server's configuration, as a server without POST /v1/read has none. */
  hideReadBatch: boolean;
  /** Holds back data batches (not atomic) until an atomic batch has been answered: a commit then comes before the data it checks. */
  holdWrites: boolean;
  close(): Promise<void>;
}

/**
 * A proxy to target on 127.0.0.1 that counts block writes and reads and
 * can tamper with what it serves (see Proxy).
 */
export async function startProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const state = {
    counts: { blockPuts: 0, atomicWrites: 0, commits: 0, checks: 0, gets: 0, reads: 0, readBlocks: 0 } as Counts,
    tamper: false,
    cutReads: 0,
    hideReadBatch: false,
    holdWrites: false,
  };
  let held: (() => void)[] = [];
  const release = () => {
    const h = held;
    held = [];
    for (const go of h) go();
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? "/";
      if (req.method === "PUT" && path.startsWith("/v1/blocks/") && !req.headers["if-match"]) state.counts.blockPuts++;
      let atomic = false;
      let dataBatch = false;
      if (req.method === "POST" && path === "/v1/blocks" && body.length >= 4) {
        const n = body.readUInt32BE(0);
        try {
          const m = JSON.parse(body.subarray(4, 4 + n).toString()) as { atomic?: boolean; blocks: { delete?: boolean; check?: boolean }[] };
          const writes = m.blocks.filter((e) => !e.delete && !e.check).length;
          atomic = m.atomic === true;
          dataBatch = !atomic && writes > 0;
          if (atomic) {
            state.counts.commits++;
            state.counts.checks += m.blocks.filter((e) => e.check).length;
            state.counts.atomicWrites += writes;
          } else state.counts.blockPuts += writes;
        } catch {
          /* the server will refuse it */
        }
      }
      let readIDs = 0;
      if (req.method === "POST" && path === "/v1/read") {
        state.counts.reads++;
        try {
          readIDs = (JSON.parse(body.toString()) as { ids: unknown[] }).ids.length;
          state.counts.readBlocks += readIDs;
        } catch {
          /* the server will refuse it */
        }
      }
      const up = http.request(
        { host: t.hostname, port: t.port, method: req.method, path, headers: { ...req.headers, host: t.host } },
        (ur) => {
          const parts: Buffer[] = [];
          ur.on("data", (c: Buffer) => parts.push(c));
          ur.on("end", () => {
            let out = Buffer.concat(parts);
            if (req.method === "GET" && path.startsWith("/v1/blocks/")) {
              state.counts.gets++;
              if (state.tamper && ur.statusCode === 200 && out.length > 100) {
                out = Buffer.from(out);
                out[out.length >> 1]! ^= 0x01;
              }
            }
            if (req.method === "GET" && path === "/v1/config" && state.hideReadBatch && ur.statusCode === 200) {
              const c = JSON.parse(out.toString()) as { limits: Record<string, unknown> };
              delete c.limits.read_batch;
              out = Buffer.from(JSON.stringify(c));
            }
            if (req.method === "POST" && path === "/v1/read" && ur.statusCode === 200 && readIDs > 0) {
              const rec = out.length / readIDs;
              if (state.tamper) {
                out = Buffer.from(out);
                for (let i = 0; i < readIDs; i++) if (out[i * rec] === 0) out[i * rec + 17 + ((rec - 17) >> 1)]! ^= 0x01;
              }
              if (state.cutReads > 0) {
                state.cutReads--;
                // The whole length announced, half the body sent: as a server whose store fails mid-answer.
                res.writeHead(200, { ...ur.headers, "content-length": String(out.length) });
                res.write(out.subarray(0, out.length >> 1), () => res.destroy());
                return;
              }
            }
            const headers = { ...ur.headers };
            // Without the server's ETag the client must find the change by the block's AEAD tag.
            if (state.tamper) delete headers["etag"];
            delete headers["content-length"];
            delete headers["transfer-encoding"];
            res.writeHead(ur.statusCode ?? 502, { ...headers, "content-length": String(out.length) });
            res.end(out);
          });
        },
      );
      up.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      if (atomic) up.on("response", (ur) => ur.on("end", release));
      if (dataBatch && state.holdWrites) held.push(() => up.end(body));
      else up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    counts: state.counts,
    reset() {
      state.counts.blockPuts = 0;
      state.counts.atomicWrites = 0;
      state.counts.commits = 0;
      state.counts.checks = 0;
      state.counts.gets = 0;
      state.counts.reads = 0;
      state.counts.readBlocks = 0;
    },
    get cutReads() {
      return state.cutReads;
    },
    set cutReads(v: number) {
      state.cutReads = v;
    },
    get hideReadBatch() {
      return state.hideReadBatch;
    },
    set hideReadBatch(v: boolean) {
      state.hideReadBatch = v;
    },
    get holdWrites() {
      return state.holdWrites;
    },
    set holdWrites(v: boolean) {
      state.holdWrites = v;
      if (!v) release();
    },
    get tamper() {
      return state.tamper;
    },
    set tamper(v: boolean) {
      state.tamper = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode is too slow for MiBs; xorshift is enough here). */
export function randomBytes(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
