// Chromium and a blindstored serve --web for the app's tests and its
// measurements (bench/measure.ts): Debian's /usr/bin/chromium driven by
// playwright-core (no browser download), and servers on 127.0.0.1 built
// by ../../test/harness.ts.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";
import { binaries, required, startProc, tempDir, type Proc } from "../../test/harness.ts";

const exec = promisify(execFile);
const CHROMIUM = process.env.BLINDSTORE_CHROMIUM ?? "/usr/bin/chromium";
// The flags of a quiet, reproducible headless run: no sandbox (containers
// have no user namespaces), no GPU, and nothing that calls home.
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Chromium, or a skip (a failure under CI: internal/testenv's rule). */
export function haveChromium(t: { skip(msg: string): void }): boolean {
  if (existsSync(CHROMIUM)) return true;
  const msg = `${CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)`;
  if (required()) assert.fail(msg + " (required here: CI or BLINDSTORE_REQUIRE_SERVICES=1 is set)");
  t.skip(msg);
  return false;
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** A port free now, for a server whose origin must be known before it starts. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

export interface Served {
  url: string;
  invite?: string;
  stop(): Promise<void>;
}

/** blindstored serve --web with an embedded store, and an issuer that allows the app's origin if asked. */
export async function serveWeb(opts: { issuer?: boolean } = {}): Promise<Served> {
  const dir = tempDir("blindstored-web-");
  const procs: Proc[] = [];
  const dirs = [dir];
  const stop = async () => {
    for (const p of procs.reverse()) await p.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const extra: string[] = [];
    let invite: string | undefined;
    if (opts.issuer) {
      const idir = tempDir("blindstored-issuer-");
      dirs.push(idir);
      const is = await startProc(["issuer", "--listen", "127.0.0.1:0", "--data", idir, "--cors-origin", origin]);
      procs.push(is);
      extra.push("--token-issuer", is.url);
      const bin = join(await binaries(), "blindstored");
      invite = (await exec(bin, ["issuer", "invite", "--data", idir, "--tokens", "200"])).stdout.trim();
    }
    const p = await startProc(["serve", "--web", "--listen", `127.0.0.1:${port}`, "--data", dir, "--block-size", "65536", "--pool-window", "5ms", ...extra]);
    procs.push(p);
    return { url: p.url, ...(invite ? { invite } : {}), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

