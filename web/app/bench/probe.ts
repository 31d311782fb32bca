// Where the app's time goes: one upload and one download of a random file
// in headless Chromium against blindstored serve --web, with
//  - the CPU time (user+sys, from /proc) of the server and of Chromium's
//    processes during each,
//  - the Resource Timing of the requests of the client's worker and of its
//    pool (queued, waiting for the server, reading the answer) and how
//    many were in flight at once,
//  - with --profile, a CPU profile of the client's worker (DevTools
//    protocol), top self times,
//  - with MICRO=mode:concurrency[:path],..., bare requests from the
//    client's worker (fetch, fetch no-store, xhr, sync xhr) of 64 KiB
//    blocks or of a static file: the cost of a request by itself,
//  - with PPROF=seconds, a CPU profile of the server during a download.
// For reading, not for tests. From web/app after make build:
//
//   ROUNDS=1 node --import tsx bench/probe.ts [MiB] [--profile]
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { CDPSession, Page } from "playwright-core";
import { startProc, tempDir } from "../../test/harness.ts";
import { freePort, launch } from "../test/browser.ts";
import { deleteFile, downloadFile, randomFile, signupInApp, topSelf, type ProfileNode } from "./common.ts";

const numbers = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const size = Number(numbers[0] ?? 64) << 20;
const profile = process.argv.includes("--profile");
const rounds = Number(process.env.ROUNDS ?? 1);
const PASSWORD = "correct horse battery staple";
const TICK = 100; // clock ticks a second (getconf CLK_TCK)


/** user+sys seconds of pid and its descendants. */
function cpuOf(root: number): number {
  const pids = [root];
  try {
    const out = execFileSync("ps", ["-o", "pid=", "--ppid", String(root)]).toString();
    for (const l of out.split("\n")) if (l.trim()) pids.push(...descendants(Number(l.trim())));
  } catch {
    /* no children */
  }
  return cpuPids(pids);
}
function descendants(pid: number): number[] {
  const out = [pid];
  try {
    const c = execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)]).toString();
    for (const l of c.split("\n")) if (l.trim()) out.push(...descendants(Number(l.trim())));
  } catch {
    /* none */
  }
  return out;
}
function chromiumPids(): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,ppid=,comm="]).toString();
  const mine = process.pid;
  const rows = out.split("\n").filter((l) => l.trim()).map((l) => l.trim().split(/\s+/));
  const kids = (p: number) => rows.filter((r) => Number(r[1]) === p).map((r) => Number(r[0]));
  const all: number[] = [];
  const walk = (p: number) => {
    for (const k of kids(p)) {
      all.push(k);
      walk(k);
    }
  };
  walk(mine);
  return all.filter((p) => rows.find((r) => Number(r[0]) === p)?.[2]?.startsWith("chr"));
}
/** user+sys seconds of each Chromium process, by its --type (browser when none). */
function cpuByType(pids: number[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of pids) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").split(/[\0 ]/);
      const t = (cmd.find((a) => a.startsWith("--type="))?.slice(7) ?? "browser") + (cmd.find((a) => a.startsWith("--utility-sub-type="))?.slice(19).replace(/^.*\./, ":") ?? "");
      m.set(t, (m.get(t) ?? 0) + cpuPids([p]));
    } catch {
      /* gone */
    }
  }
  return m;
}
/** user+sys seconds by process type and thread name. */
function cpuByThread(pids: number[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of pids) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").split(/[\0 ]/);
      const t = (cmd.find((a) => a.startsWith("--type="))?.slice(7) ?? "browser") + (cmd.find((a) => a.startsWith("--utility-sub-type="))?.slice(19).replace(/^.*\./, ":") ?? "");
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        try {
          const f = readFileSync(`/proc/${p}/task/${tid}/stat`, "utf8");
          const name = f.slice(f.indexOf("(") + 1, f.lastIndexOf(")")).replace(/\d+$/, "");
          const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
          const k = `${t}/${name}`;
          m.set(k, (m.get(k) ?? 0) + (Number(rest[11]) + Number(rest[12])) / TICK);
        } catch {
          /* gone */
        }
      }
    } catch {
      /* gone */
    }
  }
  return m;
}
function cpuPids(pids: number[]): number {
  let s = 0;
  for (const p of pids) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8");
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      s += (Number(rest[11]) + Number(rest[12])) / TICK;
    } catch {
      /* gone */
    }
  }
  return s;
}

interface Entry {
  name: string;
  startTime: number;
  fetchStart: number;
  requestStart: number;
  responseStart: number;
  responseEnd: number;
  initiatorType: string;
  workerStart: number;
}

function summarize(label: string, es: Entry[]): void {
  if (es.length === 0) {
    console.log(`${label}: no resource entries`);
    return;
  }
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
  const f = (xs: number[]) => `p50 ${q(xs, 0.5).toFixed(1)} p90 ${q(xs, 0.9).toFixed(1)} mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1)} ms`;
  const queued = es.map((e) => (e.requestStart || e.fetchStart) - e.startTime);
  const wait = es.map((e) => e.responseStart - (e.requestStart || e.fetchStart));
  const read = es.map((e) => e.responseEnd - e.responseStart);
  const total = es.map((e) => e.responseEnd - e.startTime);
  const t0 = Math.min(...es.map((e) => e.startTime));
  const t1 = Math.max(...es.map((e) => e.responseEnd));
  // Mean requests in flight (between start and end), and on the wire (requestStart to end).
  const busy = es.reduce((s, e) => s + (e.responseEnd - e.startTime), 0) / (t1 - t0);
  const wire = es.reduce((s, e) => s + (e.responseEnd - (e.requestStart || e.fetchStart)), 0) / (t1 - t0);
  console.log(`${label}: ${es.length} requests over ${(t1 - t0).toFixed(0)} ms; in flight ${busy.toFixed(1)}, on the wire ${wire.toFixed(1)}`);
  console.log(`  queued (start→requestStart) ${f(queued)}`);
  console.log(`  server (requestStart→responseStart) ${f(wait)}`);
  console.log(`  body (responseStart→responseEnd) ${f(read)}`);
  console.log(`  total ${f(total)}`);
  console.log(`  through the Service Worker (workerStart > 0): ${es.filter((e) => e.workerStart > 0).length}`);
}

/** A session with the worker's target, by the browser's flat protocol. */
async function workerSession(browserCdp: CDPSession, suffix = "/worker.js", nth = 0): Promise<(method: string, params?: object) => Promise<any>> {
  const { targetInfos } = (await browserCdp.send("Target.getTargets")) as { targetInfos: { targetId: string; type: string; url: string }[] };
  const wt = targetInfos.filter((t) => t.type === "worker" && t.url.endsWith(suffix))[nth];
  if (!wt) throw new Error("no worker target");
  const { sessionId } = (await browserCdp.send("Target.attachToTarget", { targetId: wt.targetId, flatten: false })) as { sessionId: string };
  let seq = 1;
  const pending = new Map<number, (v: any) => void>();
  browserCdp.on("Target.receivedMessageFromTarget", (ev: { sessionId: string; message: string }) => {
    if (ev.sessionId !== sessionId) return;
    const m = JSON.parse(ev.message) as { id?: number; result?: unknown; error?: unknown };
    if (m.id !== undefined) pending.get(m.id)?.(m.error ? { error: m.error } : m.result);
  });
  return (method, params = {}) =>
    new Promise((res) => {
      const id = seq++;
      pending.set(id, res);
      void browserCdp.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method, params }) });
    });
}


async function main(): Promise<void> {
  const dir = tempDir("blindstored-probe-");
  const work = tempDir("blindstore-probe-");
  const port = await freePort();
  const admin = await freePort();
  const srv = await startProc(["serve", "--web", "--listen", `127.0.0.1:${port}`, "--admin-listen", `127.0.0.1:${admin}`, "--data", dir, "--block-size", "65536", "--pool-window", "5ms"]);
  const browser = await launch();
  try {
    const file = join(work, "data.bin");
    await randomFile(file, size);
    const ctx = await browser.newContext({ acceptDownloads: true });
    const page: Page = await ctx.newPage();
    await page.goto(srv.url + "/");
    await signupInApp(page, "web", PASSWORD);
    const bcdp = await browser.newBrowserCDPSession();
    const ws = await workerSession(bcdp);
    const ev = async (expr: string) => ((await ws("Runtime.evaluate", { expression: expr, returnByValue: true })) as { result: { value: any } }).result.value;
    await ev("performance.setResourceTimingBufferSize(100000)");
    if (process.env.DOUBLE) console.log("a second Network.enable on the worker:", JSON.stringify(await ws("Network.enable")));
    // The pool's workers (blocks.js), which make the block requests of a download.
    const pool: ((method: string, params?: object) => Promise<any>)[] = [];
    // They start at the first put or get: found when first asked for.
    const evAll = async (expr: string) => {
      if (pool.length === 0) {
        const { targetInfos } = (await bcdp.send("Target.getTargets")) as { targetInfos: { type: string; url: string }[] };
        const n = targetInfos.filter((t) => t.type === "worker" && t.url.endsWith("/blocks.js")).length;
        for (let i = 0; i < n; i++) pool.push(await workerSession(bcdp, "/blocks.js", i));
      }
      const out: any[] = [await ev(expr)];
      for (const w of pool) out.push(((await w("Runtime.evaluate", { expression: expr, returnByValue: true })) as { result: { value: any } }).result.value);
      return out;
    };
    await evAll("performance.setResourceTimingBufferSize(100000)");
    const cpids = chromiumPids();
    const srvPid = srv.child.pid!;

    const measure = async (label: string, op: () => Promise<void>) => {
      await evAll("performance.clearResourceTimings()");
      if (profile) {
        await ws("Profiler.enable");
        await ws("Profiler.setSamplingInterval", { interval: 500 });
        await ws("Profiler.start");
      }
      const b0 = cpuByType(cpids);
      const th0 = cpuByThread(cpids);
      const c0 = cpuPids(cpids), s0 = cpuOf(srvPid), t0 = performance.now();
      await op();
      const t1 = performance.now(), c1 = cpuPids(cpids), s1 = cpuOf(srvPid);
      const secs = (t1 - t0) / 1000;
      const b1 = cpuByType(cpids);
      const th1 = cpuByThread(cpids);
      const th = [...th1].map(([k, v]) => [k, v - (th0.get(k) ?? 0)] as const).filter(([, v]) => v >= 0.1).sort((a, b) => b[1] - a[1]);
      console.log("  chromium CPU by thread: " + th.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", "));
      console.log("  chromium CPU by process: " + [...b1].map(([k, v]) => `${k} ${(v - (b0.get(k) ?? 0)).toFixed(2)} s`).join(", "));
      console.log(`${label}: ${secs.toFixed(2)} s, ${(size / (1 << 20) / secs).toFixed(1)} MiB/s; CPU chromium ${(c1 - c0).toFixed(2)} s, server ${(s1 - s0).toFixed(2)} s`);
      // Each worker's clock starts at its own timeOrigin: entries are moved onto one clock.
      const es = (
        (await evAll(
          `performance.getEntriesByType("resource").map(e => ({name: e.name, startTime: e.startTime + performance.timeOrigin, fetchStart: e.fetchStart + performance.timeOrigin, requestStart: e.requestStart + performance.timeOrigin, responseStart: e.responseStart + performance.timeOrigin, responseEnd: e.responseEnd + performance.timeOrigin, initiatorType: e.initiatorType, workerStart: e.workerStart}))`,
        )) as Entry[][]
      ).flat();
      const blocks = es.filter((e) => new URL(e.name).pathname.startsWith("/v1/blocks"));
      summarize(`  ${label} block requests`, blocks);
      if (profile) {
        const r = (await ws("Profiler.stop")) as { profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } };
        topSelf(r.profile);
      }
    };
    for (let i = 0; i < rounds; i++) {
      await measure("upload", async () => {
        await page.locator("#pick").setInputFiles(file);
        await page.locator(`#list tbody tr[data-name="data.bin"]`).waitFor({ timeout: 600_000 });
      });
      await measure("download", async () => {
        await downloadFile(page, "data.bin");
      });
      await deleteFile(page, "data.bin");
    }
    if (process.env.MICRO) {
      // Bare fetches from the client's worker: per-request cost without the client's work.
      await page.locator("#pick").setInputFiles(file);
      await page.locator(`#list tbody tr[data-name="data.bin"]`).waitFor({ timeout: 600_000 });
      await ev("performance.clearResourceTimings()");
      const [dl] = await Promise.all([
        page.waitForEvent("download", { timeout: 600_000 }),
        page.locator(`#list tbody tr[data-name="data.bin"] button[data-action=download]`).click(),
      ]);
      await dl.path();
      await dl.delete();
      let urls = ((await ev(`performance.getEntriesByType("resource").map(e => e.name)`)) as string[]).filter((u) => u.includes("/v1/blocks/"));
      if (urls.length === 0) {
        const bs = await workerSession(bcdp, "/blocks.js");
        urls = ((await bs("Runtime.evaluate", { expression: `performance.getEntriesByType("resource").map(e => e.name)`, returnByValue: true })).result.value as string[]).filter((u) => u.includes("/v1/blocks/"));
      }
      urls = urls.slice(0, 600);
      console.log(`micro: ${urls.length} block URLs`);
      const loops: Record<string, string> = {
        fetch: "const r = await fetch(u); await r.arrayBuffer();",
        "fetch no-store": 'const r = await fetch(u, {cache: "no-store"}); await r.arrayBuffer();',
        xhr: 'await new Promise((res, rej) => { const x = new XMLHttpRequest(); x.open("GET", u); x.responseType = "arraybuffer"; x.onload = () => res(x.response); x.onerror = rej; x.send(); });',
        "sync xhr": 'const x = new XMLHttpRequest(); x.open("GET", u, false); x.responseType = "arraybuffer"; x.send(); x.response;',
      };
      const variants = (process.env.MICRO ?? "fetch:1,fetch:6,fetch no-store:6,xhr:6,sync xhr:1").split(",");
      for (const v of variants) {
        // mode:concurrency[:path]: a path (a static file of the app) instead of the blocks.
        const [mode, c, path] = v.split(":");
        const conc = Number(c);
        const list = path ? urls.map((_, i) => `${srv.url}${path}?${i}`) : urls;
        const bytes = path ? Number((await (await fetch(srv.url + path)).arrayBuffer()).byteLength) : 65536;
        const th0 = cpuByThread(cpids), s0 = cpuOf(srvPid);
        const ms = (await ws("Runtime.evaluate", {
          expression: `(async () => { const urls = ${JSON.stringify(list)}; let next = 0; const t = performance.now();
            await Promise.all(Array.from({length: ${conc}}, async () => { while (next < urls.length) { const u = urls[next++]; ${loops[mode!]} } }));
            return (performance.now() - t) / urls.length; })()`,
          awaitPromise: true,
          returnByValue: true,
        })) as { result: { value: number } };
        const th1 = cpuByThread(cpids), s1 = cpuOf(srvPid);
        const th = [...th1].map(([k, v]) => [k, v - (th0.get(k) ?? 0)] as const).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]);
        const tot = th.reduce((a, [, v]) => a + v, 0);
        console.log(`  ${mode}, ${conc} at a time, ${bytes} bytes: ${ms.result.value.toFixed(2)} ms a request wall; chromium CPU ${((1000 * tot) / urls.length).toFixed(2)} ms a request, server ${((1000 * (s1 - s0)) / urls.length).toFixed(2)} ms: ` + th.map(([k, v]) => `${k} ${((1000 * v) / urls.length).toFixed(2)}`).join(", "));
      }
    }
    if (process.env.PPROF) {
      // A CPU profile of the server during one more download.
      await page.locator("#pick").setInputFiles(file);
      await page.locator(`#list tbody tr[data-name="data.bin"]`).waitFor({ timeout: 600_000 });
      const prof = fetch(`http://127.0.0.1:${admin}/debug/pprof/profile?seconds=${process.env.PPROF}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
      const [dl] = await Promise.all([
        page.waitForEvent("download", { timeout: 600_000 }),
        page.locator(`#list tbody tr[data-name="data.bin"] button[data-action=download]`).click(),
      ]);
      await dl.path();
      await dl.delete();
      const { writeFileSync } = await import("node:fs");
      writeFileSync("/tmp/probe-server-cpu.pb.gz", await prof);
      console.log("server CPU profile: /tmp/probe-server-cpu.pb.gz");
    }
    await ctx.close();
  } finally {
    await browser.close();
    await srv.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
