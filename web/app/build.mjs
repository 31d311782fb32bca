// Builds the app into internal/webapp/dist, which the Go binary embeds:
// app.js (the page), worker.js (the client, in a Web Worker), blocks.js
// (its pool of workers that seal and read file blocks), sw.js (the
// Service Worker that streams downloads), index.html and app.css. The
// output depends only on the sources and the locked versions, so that
// `node build.mjs --check` (make app-test) can tell whether the committed
// bundle is the build of the committed sources.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "../../internal/webapp/dist");
const check = process.argv.includes("--check");
// The gzip budget of the whole app, Argon2's WebAssembly included.
const BUDGET = 300 * 1024;

async function buildInto(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    absWorkingDir: here,
    entryPoints: { app: "src/main.ts", worker: "src/worker.ts", blocks: "src/blocks.ts", sw: "src/sw.ts" },
    outdir: out,
    bundle: true,
    format: "iife",
    target: ["es2022", "chrome109", "firefox115", "safari16"],
    platform: "browser",
    minify: true,
    // Licences of the bundled libraries stay with the code they cover.
    legalComments: "eof",
    charset: "utf8",
    sourcemap: false,
    logLevel: "warning",
  });
  for (const f of readdirSync(join(here, "static"))) cpSync(join(here, "static", f), join(out, f));
}

function files(dir) {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f))]),
  );
}

function report(dir) {
  let total = 0;
  for (const [name, data] of Object.entries(files(dir))) {
    const gz = gzipSync(data, { level: 9 }).length;
    total += gz;
    console.log(`${name.padEnd(12)} ${String(data.length).padStart(8)} bytes, gzip ${String(gz).padStart(7)}`);
  }
  console.log(`${"total".padEnd(12)} gzip ${total} bytes (${(total / 1024).toFixed(1)} KiB of ${BUDGET / 1024} KiB)`);
  if (total > BUDGET) {
    console.error(`the app is ${total} bytes gzipped, over its budget of ${BUDGET}`);
    process.exit(1);
  }
}

if (check) {
  const tmp = mkdtempSync(join(tmpdir(), "blindstore-app-"));
  try {
    await buildInto(tmp);
    const want = files(tmp);
    const have = files(dist);
    const names = new Set([...Object.keys(want), ...Object.keys(have)]);
    const differ = [...names].filter((n) => !want[n] || !have[n] || !want[n].equals(have[n]));
    if (differ.length > 0) {
      console.error(`internal/webapp/dist is not the build of web/app (differs: ${differ.join(", ")}): run npm run build in web/app and commit the result`);
      process.exit(1);
    }
    const digest = createHash("sha256");
    for (const n of Object.keys(want)) digest.update(n).update(want[n]);
    console.log(`internal/webapp/dist matches a fresh build (sha256 ${digest.digest("hex").slice(0, 16)})`);
    report(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  await buildInto(dist);
  report(dist);
}
