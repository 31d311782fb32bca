// The app's whole flow in a real headless Chromium (Debian's, at
// /usr/bin/chromium, driven by playwright-core; no browser is downloaded)
// against a real blindstored serve --web on 127.0.0.1, with an open store
// and with a token issuer: sign up, upload (file picker and drag and drop,
// progress bars), list, download and compare bytes, a share link opened
// in a second browser context without an account, rename, delete, log
// out, and "remember this device". A screenshot of the file list goes to
// test-output/.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes as cryptoRandom } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { binaries } from "../../test/harness.ts";
import { haveChromium, launch, serveWeb } from "./browser.ts";

const OUT = join(import.meta.dirname, "..", "test-output");

function random(n: number): Buffer {
  return cryptoRandom(n);
}

/** Fails the test on any error the page logs (a CSP violation among them). */
function watchConsole(page: Page, errors: string[]): void {
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));
}

async function signup(page: Page, user: string, password: string, invite?: string, remember = false): Promise<string> {
  const form = page.locator("#login-form");
  await form.locator("input[name=user]").fill(user);
  await form.locator("input[name=password]").fill(password);
  if (invite) {
    await form.locator(".invite").waitFor({ state: "visible" });
    await form.locator("input[name=invite]").fill(invite);
  }
  if (remember) await form.locator("input[name=remember]").check();
  await form.locator("button[value=signup]").click();
  await page.locator("#recovery").waitFor({ state: "visible", timeout: 60_000 });
  const code = (await page.locator("#recovery-code").textContent()) ?? "";
  assert.match(code, /\S{10,}/, "a recovery code is shown");
  await page.locator("#recovery-done").click();
  await page.locator("#files").waitFor({ state: "visible" });
  return code;
}

async function login(page: Page, user: string, password: string, remember: boolean, invite?: string): Promise<void> {
  const form = page.locator("#login-form");
  await form.locator("input[name=user]").fill(user);
  await form.locator("input[name=password]").fill(password);
  if (invite) await form.locator("input[name=invite]").fill(invite);
  if (remember) await form.locator("input[name=remember]").check();
  await form.locator("button[value=login]").click();
  await page.locator("#files").waitFor({ state: "visible", timeout: 60_000 });
}

const row = (page: Page, name: string) => page.locator(`#list tbody tr[data-name="${name}"]`);

/** Clicks a row's Download and returns the bytes the browser saved. */
async function download(page: Page, name: string): Promise<Buffer> {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), row(page, name).locator("button[data-action=download]").click()]);
  assert.equal(dl.suggestedFilename(), name);
  const path = await dl.path();
  return readFileSync(path);
}

/** Records every value the upload bars take, to show they moved. */
async function recordProgress(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { progressSeen: { name: string; value: number; max: number }[] };
    w.progressSeen = [];
    new MutationObserver((ms) => {
      for (const m of ms) {
        const p = m.target as HTMLProgressElement;
        if (p.tagName === "PROGRESS") w.progressSeen.push({ name: p.closest("li")?.dataset["name"] ?? "", value: p.value, max: p.max });
      }
    }).observe(document.getElementById("uploads")!, { subtree: true, attributes: true, attributeFilter: ["value"] });
  });
}

async function progressSeen(page: Page, name: string): Promise<{ value: number; max: number }[]> {
  const all = await page.evaluate(() => (window as unknown as { progressSeen: { name: string; value: number; max: number }[] }).progressSeen);
  return all.filter((p) => p.name === name);
}

async function flow(t: { skip(msg: string): void }, opts: { issuer: boolean; shot: string }): Promise<void> {
  if (!haveChromium(t)) return;
  const srv = await serveWeb({ issuer: opts.issuer });
  const browser = await launch();
  const errors: string[] = [];
  try {
    const ctx = await browser.newContext({ acceptDownloads: true });
    const page = await ctx.newPage();
    watchConsole(page, errors);
    const resp = await page.goto(srv.url + "/");
    assert.ok(resp, "the app answers");
    assert.match(resp.headers()["content-security-policy"] ?? "", /script-src 'self' 'wasm-unsafe-eval'/);
    await page.locator("#auth").waitFor({ state: "visible" });

    const user = `alice-${Date.now()}`;
    const password = "correct horse battery staple";
    await signup(page, user, password, srv.invite);
    assert.equal(await page.locator("#empty").isVisible(), true, "a new account is empty");
    if (opts.issuer) assert.match((await page.locator("#tokens").textContent()) ?? "", /\d+ tokens? left/);
    assert.match((await page.locator("#safe-until").getAttribute("datetime")) ?? "", /^\d{4}-\d\d-\d\dT/);

    // Upload: two files through the picker, one by drag and drop.
    const big = random(6 << 20);
    const notes = Buffer.from("a small file, stored inline\n");
    await recordProgress(page);
    await page.locator("#pick").setInputFiles([
      { name: "big.bin", mimeType: "application/octet-stream", buffer: big },
      { name: "notes.txt", mimeType: "text/plain", buffer: notes },
    ]);
    await page.locator('#uploads li[data-name="big.bin"] progress').waitFor({ state: "visible" });
    const dropped = random(200_000);
    const dt = await page.evaluateHandle((b64) => {
      const d = new DataTransfer();
      d.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], "dropped.bin"));
      return d;
    }, dropped.toString("base64"));
    await page.dispatchEvent("#drop", "drop", { dataTransfer: dt });
    for (const [name, data] of [["big.bin", big], ["notes.txt", notes], ["dropped.bin", dropped]] as const) {
      await row(page, name).waitFor({ timeout: 120_000 });
      assert.equal(await row(page, name).getAttribute("data-size"), String(data.length), `${name}: listed size`);
    }
    const bar = await progressSeen(page, "big.bin");
    assert.ok(bar.some((p) => p.value > 0 && p.value < p.max), `big.bin's bar showed progress between 0 and done: ${JSON.stringify(bar)}`);
    assert.ok(bar.some((p) => p.value === p.max && p.max === big.length), "big.bin's bar reached its size");
    assert.match((await page.locator("#usage").textContent()) ?? "", /^3 files, /);

    mkdirSync(OUT, { recursive: true });
    await page.locator("main").screenshot({ path: join(OUT, opts.shot) });

    // Download and compare. The blocks come a few dozen to a request
    // (POST /v1/read, read by the block workers), not one GET each.
    const reads = { post: 0, get: 0 };
    const countReads = (r: { method(): string; url(): string }) => {
      const path = new URL(r.url()).pathname;
      if (r.method() === "POST" && path === "/v1/read") reads.post++;
      if (r.method() === "GET" && path.startsWith("/v1/blocks/")) reads.get++;
    };
    ctx.on("request", countReads);
    assert.ok(big.equals(await download(page, "big.bin")), "big.bin downloads byte for byte");
    ctx.off("request", countReads);
    // 6 MiB is 97 blocks of 64 KiB: read by GET they would be 97 requests.
    assert.ok(reads.post >= 1 && reads.post <= 8 && reads.get === 0, `big.bin was read with ${reads.post} POST /v1/read and ${reads.get} block GETs`);
    assert.ok(notes.equals(await download(page, "notes.txt")), "notes.txt downloads byte for byte");
    assert.ok(
      await page.evaluate(async () => !!(await navigator.serviceWorker.getRegistration("/_download/x"))?.active && !navigator.serviceWorker.controller),
      "the Service Worker streams the downloads, and the page (with the client's requests) is not in its scope",
    );

    // Share: the link opens in a context with no account, and the
    // capability never travels to the server.
    await row(page, "dropped.bin").locator("button[data-action=share]").click();
    await page.locator("#share-box").waitFor({ state: "visible" });
    const link = await page.locator("#share-link").inputValue();
    const cap = decodeURIComponent(link.split("#cap=")[1] ?? "");
    assert.ok(link.startsWith(srv.url + "/#cap=") && cap.length > 20, `share link ${link}`);
    const other = await browser.newContext({ acceptDownloads: true });
    const seen: string[] = [];
    other.on("request", (r) => seen.push(r.url() + " " + JSON.stringify(r.headers())));
    const p2 = await other.newPage();
    watchConsole(p2, errors);
    await p2.goto(link);
    await p2.locator("#shared-name").filter({ hasText: "dropped.bin" }).waitFor({ timeout: 60_000 });
    const [dl] = await Promise.all([p2.waitForEvent("download", { timeout: 60_000 }), p2.locator("#shared-get").click()]);
    assert.ok(dropped.equals(readFileSync(await dl.path())), "the shared file downloads byte for byte");
    for (const s of seen) assert.ok(!s.includes(cap) && !s.includes(encodeURIComponent(cap)), `a request carried the capability: ${s}`);
    await other.close();

    // Rename and delete.
    await row(page, "notes.txt").locator("button[data-action=rename]").click();
    await page.locator("#rename input[name=to]").fill("renamed.txt");
    await page.locator("#rename button[type=submit]").click();
    await row(page, "renamed.txt").waitFor();
    assert.equal(await row(page, "notes.txt").count(), 0);
    assert.ok(notes.equals(await download(page, "renamed.txt")), "the renamed file keeps its bytes");
    const del = row(page, "big.bin").locator("button[data-action=delete]");
    await del.click();
    await del.click();
    await row(page, "big.bin").waitFor({ state: "detached" });
    assert.match((await page.locator("#usage").textContent()) ?? "", /^2 files, /);

    // Log out: nothing stays in the browser.
    await page.locator("#logout").click();
    await page.locator("#auth").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    await page.reload();
    await page.locator("#auth").waitFor({ state: "visible" });

    // Remember this device: the session survives a reload, and only then.
    await login(page, user, password, true, srv.invite);
    assert.ok(await row(page, "renamed.txt").isVisible());
    await page.reload();
    await page.locator("#files").waitFor({ state: "visible", timeout: 60_000 });
    assert.ok(await row(page, "renamed.txt").isVisible(), "a remembered session opens the account after a reload");
    await page.locator("#logout").click();
    await page.locator("#auth").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => localStorage.length), 0);

    // A wrong password says so.
    await page.locator("#login-form input[name=user]").fill(user);
    await page.locator("#login-form input[name=password]").fill("not the password");
    await page.locator("#login-form button[value=login]").click();
    await page.locator("#message.error").waitFor({ timeout: 60_000 });
    assert.match((await page.locator("#message").textContent()) ?? "", /wrong user name or password/i);
    await ctx.close();
    assert.deepEqual(errors, [], "the pages logged no errors (a CSP violation would be one)");
  } finally {
    await browser.close();
    await srv.stop();
  }
}

describe("the app in Chromium", () => {
  before(() => binaries());
  test("open store", { timeout: 300_000 }, (t) => flow(t, { issuer: false, shot: "file-list.png" }));
  test("server that charges tokens", { timeout: 300_000 }, (t) => flow(t, { issuer: true, shot: "file-list-tokens.png" }));
});

