// The app's upload and download timed in headless Chromium driven by the
// bare DevTools protocol (a pipe, Runtime and DOM only), without the
// Network instrumentation that playwright-core switches on in every page
// and worker. For reading, not for tests. From web/app after make build:
//
//   node --import tsx bench/rawcdp.ts [MiB] [--micro]
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import { startProc, tempDir } from "../../test/harness.ts";
import { freePort } from "../test/browser.ts";
import { randomFile, topSelf } from "./common.ts";

const numbers = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const size = Number(numbers[0] ?? 64) << 20;
const rounds = Number(process.env.ROUNDS ?? 2);
const PASSWORD = "correct horse battery staple";


type Handler = (params: any, sessionId?: string) => void;

class CDP {
  private seq = 1;
  private pending = new Map<number, [(v: any) => void, (e: Error) => void]>();
  private handlers = new Map<string, Handler[]>();
  private buf = "";
  constructor(
    private readonly w: Writable,
    r: Readable,
  ) {
    r.setEncoding("utf8");
    r.on("data", (s: string) => {
      this.buf += s;
      for (let i = this.buf.indexOf("\0"); i >= 0; i = this.buf.indexOf("\0")) {
        const m = JSON.parse(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
        if (m.id !== undefined) {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (m.error) p?.[1](new Error(JSON.stringify(m.error)));
          else p?.[0](m.result);
        } else for (const h of this.handlers.get(m.method) ?? []) h(m.params, m.sessionId);
      }
    });
  }
  send(method: string, params: object = {}, sessionId?: string): Promise<any> {
    const id = this.seq++;
    return new Promise((res, rej) => {
      this.pending.set(id, [res, rej]);
      this.w.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
    });
  }
  on(method: string, h: Handler): void {
    this.handlers.set(method, [...(this.handlers.get(method) ?? []), h]);
  }
}


async function main(): Promise<void> {
  const dir = tempDir("blindstored-raw-");
  const work = tempDir("blindstore-raw-");
  const port = await freePort();
  const srv = await startProc(["serve", "--web", "--listen", `127.0.0.1:${port}`, "--data", dir, "--block-size", "65536", "--pool-window", "5ms"]);
  const profile = join(work, "profile");
  const dls = join(work, "downloads");
  mkdirSync(dls);
  const chrome = spawn(
    "/usr/bin/chromium",
    ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-pipe", `--user-data-dir=${profile}`, "about:blank"],
    { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] },
  );
  const cdp = new CDP(chrome.stdio[3] as Writable, chrome.stdio[4] as Readable);
  try {
    const file = join(work, "data.bin");
    await randomFile(file, size);
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allowAndName", downloadPath: dls, eventsEnabled: true });
    const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
    const { sessionId: ps } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
    const workers: string[] = [];
    cdp.on("Target.attachedToTarget", (p) => {
      if (p.targetInfo.type === "worker") {
        workers.push(p.sessionId);
        // The client's worker starts the pool's workers (blocks.js).
        void cdp.send("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: false, flatten: true }, p.sessionId);
      }
      void cdp.send("Runtime.runIfWaitingForDebugger", {}, p.sessionId);
    });
    await cdp.send("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: false, flatten: true }, ps);
    await cdp.send("Page.enable", {}, ps);
    await cdp.send("Page.navigate", { url: srv.url + "/" }, ps);
    const evalIn = async (s: string, expr: string) => {
      const r = await cdp.send("Runtime.evaluate", { expression: expr, awaitPromise: true, returnByValue: true }, s);
      if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
      return r.result.value;
    };
    const waitFor = async (expr: string, ms = 120_000) => {
      const t = Date.now();
      while (Date.now() - t < ms) {
        try {
          if (await evalIn(ps, expr)) return;
        } catch {
          /* page loading */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error("timed out waiting for " + expr);
    };
    const visible = (sel: string) => `(() => { const e = document.querySelector(${JSON.stringify(sel)}); return !!e && e.offsetParent !== null; })()`;
    await waitFor(visible("#login-form"));
    await evalIn(
      ps,
      `(() => { const f = document.querySelector("#login-form"); f.querySelector("input[name=user]").value = "web"; f.querySelector("input[name=password]").value = ${JSON.stringify(PASSWORD)}; f.querySelector("button[value=signup]").click(); })()`,
    );
    await waitFor(visible("#recovery-done"));
    await evalIn(ps, `document.querySelector("#recovery-done").click()`);
    await waitFor(visible("#files"));
    const row = `#list tbody tr[data-name="data.bin"]`;
    let done: (() => void) | undefined;
    cdp.on("Browser.downloadProgress", (p) => {
      if (p.state === "completed") done?.();
    });
    for (let i = 0; i < rounds; i++) {
      const { root } = await cdp.send("DOM.getDocument", {}, ps);
      const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector: "#pick" }, ps);
      let t = performance.now();
      await cdp.send("DOM.setFileInputFiles", { files: [file], nodeId }, ps);
      await waitFor(`!!document.querySelector(${JSON.stringify(row)})`, 600_000);
      const up = (performance.now() - t) / 1000;
      const finished = new Promise<void>((r) => (done = r));
      const wsess = workers[0];
      const prof = process.argv.includes("--profile") && wsess;
      if (prof) {
        await cdp.send("Profiler.enable", {}, wsess);
        await cdp.send("Profiler.setSamplingInterval", { interval: 200 }, wsess);
        await cdp.send("Profiler.start", {}, wsess);
      }
      t = performance.now();
      await evalIn(ps, `document.querySelector(${JSON.stringify(row + " button[data-action=download]")}).click()`);
      await finished;
      const down = (performance.now() - t) / 1000;
      if (prof) topSelf((await cdp.send("Profiler.stop", {}, wsess)).profile);
      const got = readdirSync(dls).map((n) => statSync(join(dls, n)).size);
      console.log(`round ${i}: upload ${up.toFixed(2)} s (${(size / (1 << 20) / up).toFixed(1)} MiB/s), download ${down.toFixed(2)} s (${(size / (1 << 20) / down).toFixed(1)} MiB/s); downloaded sizes ${got.join(",")}`);
      for (const n of readdirSync(dls)) rmSync(join(dls, n));
      await evalIn(ps, `(async () => { const b = document.querySelector(${JSON.stringify(row + " button[data-action=delete]")}); b.click(); await new Promise(r => setTimeout(r, 50)); b.click(); })()`);
      await waitFor(`!document.querySelector(${JSON.stringify(row)})`);
    }
    if (process.argv.includes("--micro") && workers.length > 0) {
      const ws = workers[0]!;
      for (const w of workers) await evalIn(w, "performance.setResourceTimingBufferSize(100000)");
      const { root } = await cdp.send("DOM.getDocument", {}, ps);
      const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector: "#pick" }, ps);
      await cdp.send("DOM.setFileInputFiles", { files: [file], nodeId }, ps);
      await waitFor(`!!document.querySelector(${JSON.stringify(row)})`, 600_000);
      for (const w of workers) await evalIn(w, "performance.clearResourceTimings()");
      const finished = new Promise<void>((r) => (done = r));
      await evalIn(ps, `document.querySelector(${JSON.stringify(row + " button[data-action=download]")}).click()`);
      await finished;
      let urls: string[] = [];
      for (const w of workers) urls.push(...((await evalIn(w, `performance.getEntriesByType("resource").map(e => e.name)`)) as string[]).filter((u) => u.includes("/v1/blocks/")));
      urls = urls.slice(0, 600);
      console.log(`micro: ${urls.length} block URLs`);
      const cpu = () => {
        let s = 0;
        const walk = (pid: number) => {
          try {
            const f = readFileSync(`/proc/${pid}/stat`, "utf8");
            const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
            s += (Number(rest[11]) + Number(rest[12])) / 100;
            for (const t of readdirSync(`/proc/${pid}/task`)) {
              for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/)) if (c) walk(Number(c));
            }
          } catch {
            /* gone */
          }
        };
        walk(chrome.pid!);
        return s;
      };
      const threads = () => {
        const m = new Map<string, number>();
        const walk = (pid: number) => {
          try {
            const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split(/[\0 ]/);
            const t = (cmd.find((a) => a.startsWith("--type="))?.slice(7) ?? "browser") + (cmd.find((a) => a.startsWith("--utility-sub-type="))?.slice(19).replace(/^.*\./, ":") ?? "");
            for (const tid of readdirSync(`/proc/${pid}/task`)) {
              const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
              const name = f.slice(f.indexOf("(") + 1, f.lastIndexOf(")")).replace(/\d+$/, "");
              const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
              const k = `${t}/${name}`;
              m.set(k, (m.get(k) ?? 0) + (Number(rest[11]) + Number(rest[12])) / 100);
              for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/)) if (c) walk(Number(c));
            }
          } catch {
            /* gone */
          }
        };
        walk(chrome.pid!);
        return m;
      };
      const variants: [string, string, number, string, string?][] = [
        ["worker", ws, 6, '{cache: "no-store"}'],
        ["worker, /worker.js", ws, 6, '{cache: "no-store"}', "/worker.js"],
        ["worker", ws, 1, '{cache: "no-store"}'],
        ["worker, /worker.js", ws, 1, '{cache: "no-store"}', "/worker.js"],
      ];
      for (const [where, sess, conc, opts, path] of variants) {
        const list = path ? urls.map((_, i) => `${srv.url}${path}?${i}`) : urls;
        const th0 = threads();
        const ms = await evalIn(
          sess,
          `(async () => { const urls = ${JSON.stringify(list)}; let next = 0; const t = performance.now();
            await Promise.all(Array.from({length: ${conc}}, async () => { while (next < urls.length) { const r = await fetch(urls[next++], ${opts}); await r.arrayBuffer(); } }));
            return (performance.now() - t) / urls.length; })()`,
        );
        const th1 = threads();
        const th = [...th1].map(([k, v]) => [k, v - (th0.get(k) ?? 0)] as const).filter(([, v]) => v >= 0.03).sort((a, b) => b[1] - a[1]);
        const tot = th.reduce((a, [, v]) => a + v, 0);
        console.log(`  ${where} ${opts}, ${conc} at a time: ${ms.toFixed(2)} ms a request wall; chromium CPU ${((1000 * tot) / urls.length).toFixed(2)} ms: ` + th.map(([k, v]) => `${k} ${((1000 * v) / urls.length).toFixed(2)}`).join(", "));
      }
    }
  } finally {
    chrome.kill("SIGTERM");
    await once(chrome, "exit");
    await srv.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
