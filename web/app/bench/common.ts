// Pieces the bench scripts share (measure.ts, probe.ts, rawcdp.ts).
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import type { Page } from "playwright-core";

/** Writes n random bytes to path, 1 MiB at a time. */
export async function randomFile(path: string, n: number): Promise<void> {
  const w = createWriteStream(path);
  for (let left = n; left > 0; left -= 1 << 20) {
    if (!w.write(randomBytes(Math.min(left, 1 << 20)))) await once(w, "drain");
  }
  w.end();
  await once(w, "finish");
}

/** A node of a DevTools CPU profile. */
export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

/** Prints the n functions of a CPU profile with the most self time. */
export function topSelf(p: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }, n = 25): void {
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const byName = new Map<string, number>();
  let total = 0;
  for (const node of p.nodes) {
    const t = self.get(node.id) ?? 0;
    total += t;
    const cf = node.callFrame;
    const k = `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}:${cf.lineNumber}:${cf.columnNumber}`;
    byName.set(k, (byName.get(k) ?? 0) + t);
  }
  const rows = [...byName].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`  worker profile: ${(total / 1000).toFixed(0)} ms sampled`);
  for (const [k, t] of rows) console.log(`   ${(t / 1000).toFixed(0).padStart(7)} ms ${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`);
}

/** The app's row of a file, by name. */
const rowOf = (page: Page, name: string) => page.locator(`#list tbody tr[data-name="${name}"]`);

/** Downloads a file through the app's list and throws the download away. */
export async function downloadFile(page: Page, name: string): Promise<void> {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 600_000 }), rowOf(page, name).locator("button[data-action=download]").click()]);
  await dl.path();
  await dl.delete();
}

/** Deletes a file through the app's list (the button asks to be clicked twice). */
export async function deleteFile(page: Page, name: string): Promise<void> {
  const del = rowOf(page, name).locator("button[data-action=delete]");
  await del.click();
  await del.click();
  await rowOf(page, name).waitFor({ state: "detached" });
}

/** Signs user up in the app at page (already on the app's URL) and waits for the file list. */
export async function signupInApp(page: Page, user: string, password: string): Promise<void> {
  const f = page.locator("#login-form");
  await f.locator("input[name=user]").fill(user);
  await f.locator("input[name=password]").fill(password);
  await f.locator("button[value=signup]").click();
  await page.locator("#recovery-done").click({ timeout: 120_000 });
  await page.locator("#files").waitFor({ state: "visible" });
}
