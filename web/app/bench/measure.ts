// Measures the app in headless Chromium against blind on one server, and
// prints the figures (it asserts nothing: speed is for reading, not for
// tests). Run from web/app after make build:
//
//   BLINDSTORE_BIN=../../bin node --import tsx bench/measure.ts [MiB] [heap MiB] [--json]
//
// --json prints the raw figures as one JSON object instead (make bench's
// browser row reads it).
// Rows: login in the app (Argon2id in WebAssembly, in the worker) against
// `blind login`; a SIZE MiB random file uploaded and downloaded in the app
// against `blind put` and `blind get`; the page's and the worker's JS heap
// (the DevTools protocol's Performance.getMetrics JSHeapUsedSize, sampled
// every 100 ms) during an upload of HEAP MiB; and the bundle's gzip size.
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { CDPSession, Page } from "playwright-core";
import { blindOK, tempDir } from "../../test/harness.ts";
import { launch, serveWeb } from "../test/browser.ts";
import { randomFile, signupInApp, downloadFile, deleteFile } from "./common.ts";

const json = process.argv.includes("--json");
const numbers = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const size = Number(numbers[0] ?? 64) << 20;
const heapSize = Number(numbers[1] ?? 256) << 20;
const ROUNDS = 3;
const PASSWORD = "correct horse battery staple";


async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mibps = (bytes: number, s: number) => bytes / (1 << 20) / s;

/** Fills the login form; the login itself is loginNow. */
async function fillLogin(page: Page, user: string): Promise<void> {
  const f = page.locator("#login-form");
  await f.locator("input[name=user]").fill(user);
  await f.locator("input[name=password]").fill(PASSWORD);
}

/**
 * Seconds from the press of "Log in" to the file list shown, as blind
 * login is timed from its start to its end. Timed in the page (the form's
 * submit event to the list's section unhidden), so that the driver's
 * click checks and its polling for the list (about 0.08 s before and up
 * to 0.25 s after, measured) are not counted as the app's.
 */
async function loginNow(page: Page): Promise<number> {
  const shown = page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        const files = document.getElementById("files")!;
        let start = -1;
        document.getElementById("login-form")!.addEventListener("submit", () => (start = performance.now()), { once: true, capture: true });
        const mo = new MutationObserver(() => {
          if (start >= 0 && !files.hidden) {
            mo.disconnect();
            resolve((performance.now() - start) / 1000);
          }
        });
        mo.observe(files, { attributes: true, attributeFilter: ["hidden"] });
      }),
  );
  await page.locator("#login-form button[value=login]").click();
  await page.locator("#files").waitFor({ state: "visible", timeout: 120_000 });
  return shown;
}

async function appUpload(page: Page, path: string, name: string): Promise<void> {
  await page.locator("#pick").setInputFiles(path);
  await page.locator(`#list tbody tr[data-name="${name}"]`).waitFor({ timeout: 600_000 });
}

/** The page's JSHeapUsedSize (Performance.getMetrics). */
async function heapOf(s: CDPSession): Promise<number> {
  const m = (await s.send("Performance.getMetrics")) as { metrics: { name: string; value: number }[] };
  return m.metrics.find((x) => x.name === "JSHeapUsedSize")?.value ?? 0;
}

async function main(): Promise<void> {
  const srv = await serveWeb();
  const work = tempDir("blindstore-measure-");
  const browser = await launch();
  try {
    const rows: [string, string][] = [];
    const cfg = join(work, "blind");
    const file = join(work, "data.bin");
    await randomFile(file, size);

    // blind: signup, then logins, puts and gets.
    await blindOK(cfg, ["--server", srv.url, "signup", "--user", "cli"], { BLIND_PASSWORD: PASSWORD });
    const blindLogin: number[] = [];
    for (let i = 0; i < ROUNDS; i++) blindLogin.push(await timed(() => blindOK(cfg, ["--server", srv.url, "login", "--user", "cli"], { BLIND_PASSWORD: PASSWORD })));
    const blindPut: number[] = [];
    const blindGet: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      blindPut.push(await timed(() => blindOK(cfg, ["--server", srv.url, "put", file, "--as", `f${i}.bin`], { BLIND_PASSWORD: PASSWORD })));
      const out = join(work, "out.bin");
      blindGet.push(await timed(() => blindOK(cfg, ["--server", srv.url, "get", `f${i}.bin`, "-o", out], { BLIND_PASSWORD: PASSWORD })));
      rmSync(out, { force: true });
    }

    // The app: signup, then timed logins (a fresh page each time, as a
    // returning user), uploads and downloads.
    const ctx = await browser.newContext({ acceptDownloads: true });
    let page = await ctx.newPage();
    await page.goto(srv.url + "/");
    await signupInApp(page, "web", PASSWORD);
    await page.close();
    const appLogins: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      page = await ctx.newPage();
      await page.goto(srv.url + "/");
      await page.locator("#auth").waitFor({ state: "visible" });
      await fillLogin(page, "web");
      appLogins.push(await loginNow(page));
      if (i < ROUNDS - 1) await page.close();
    }
    const appPut: number[] = [];
    const appGet: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const name = "data.bin";
      appPut.push(await timed(() => appUpload(page, file, name)));
      appGet.push(
        await timed(async () => {
          await downloadFile(page, name);
        }),
      );
      // The next round uploads a file of the same name: delete it so that
      // no chunk is reused.
      await deleteFile(page, name);
    }
    const bl = median(blindLogin), al = median(appLogins);
    rows.push(["login: app / blind login", `${al.toFixed(2)} s / ${bl.toFixed(2)} s = ${(al / bl).toFixed(2)}× (target ≤ 3×)`]);
    const bp = mibps(size, median(blindPut)), ap = mibps(size, median(appPut));
    rows.push([`upload ${size >> 20} MiB: app / blind put`, `${ap.toFixed(1)} / ${bp.toFixed(1)} MiB/s = ${(ap / bp).toFixed(2)}× (target ≥ 0.3×)`]);
    const bg = mibps(size, median(blindGet)), ag = mibps(size, median(appGet));
    rows.push([`download ${size >> 20} MiB: app / blind get`, `${ag.toFixed(1)} / ${bg.toFixed(1)} MiB/s = ${(ag / bg).toFixed(2)}× (target ≥ 0.3×)`]);

    // The heap during a large upload: the page's, from its own target, and
    // the worker's, from a session attached to the worker's target.
    const big = join(work, "big.bin");
    await randomFile(big, heapSize);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Performance.enable");
    const bcdp = await browser.newBrowserCDPSession();
    const { targetInfos } = (await bcdp.send("Target.getTargets")) as { targetInfos: { targetId: string; type: string; url: string }[] };
    const wt = targetInfos.find((t) => t.type === "worker" && t.url.endsWith("/worker.js"));
    let workerHeap: (() => Promise<number>) | undefined;
    if (wt) {
      const { sessionId } = (await bcdp.send("Target.attachToTarget", { targetId: wt.targetId, flatten: false })) as { sessionId: string };
      let seq = 1;
      const pending = new Map<number, (v: number) => void>();
      bcdp.on("Target.receivedMessageFromTarget", (ev: { sessionId: string; message: string }) => {
        if (ev.sessionId !== sessionId) return;
        const m = JSON.parse(ev.message) as { id?: number; result?: { usedSize?: number } };
        if (m.id !== undefined) pending.get(m.id)?.(m.result?.usedSize ?? 0);
      });
      workerHeap = () =>
        new Promise<number>((res) => {
          const id = seq++;
          pending.set(id, res);
          void bcdp.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method: "Runtime.getHeapUsage" }) });
        });
    }
    let pageMax = 0;
    let workerMax = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        pageMax = Math.max(pageMax, await heapOf(cdp));
        if (workerHeap) workerMax = Math.max(workerMax, await workerHeap());
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const heapUp = await timed(() => appUpload(page, big, "big.bin"));
    sampling = false;
    await sampler;
    rows.push([`JS heap during a ${heapSize >> 20} MiB upload (${heapUp.toFixed(1)} s)`, `page ${(pageMax / (1 << 20)).toFixed(1)} MiB (target < 64 MiB), worker ${wt ? (workerMax / (1 << 20)).toFixed(1) + " MiB" : "not found"}`]);

    const dist = join(import.meta.dirname, "../../../internal/webapp/dist");
    const gz = readdirSync(dist).reduce((s, n) => s + gzipSync(readFileSync(join(dist, n)), { level: 9 }).length, 0);
    rows.push(["bundle, gzip (Argon2 WebAssembly included)", `${(gz / 1024).toFixed(1)} KiB (target ≤ 300 KiB)`]);

    if (json) {
      console.log(
        JSON.stringify({
          rounds: ROUNDS, size, heap_size: heapSize,
          blind_login_s: blindLogin, app_login_s: appLogins,
          blind_put_s: blindPut, app_put_s: appPut, blind_get_s: blindGet, app_get_s: appGet,
          page_heap_max_bytes: pageMax, worker_heap_max_bytes: wt ? workerMax : -1, heap_upload_s: heapUp,
          bundle_gzip_bytes: gz,
        }),
      );
      await ctx.close();
      return;
    }
    console.log(`medians of ${ROUNDS} rounds; blind and the app on one blindstored serve --web (embedded store, 64 KiB blocks)`);
    for (const [k, v] of rows) console.log(`${k.padEnd(48)} ${v}`);
    await ctx.close();
  } finally {
    await browser.close();
    await srv.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
