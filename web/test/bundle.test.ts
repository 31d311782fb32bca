// The client runs in a browser's Web Worker: it bundles for the browser
// platform with no Node built-in, and its sources use neither the DOM nor
// Node's globals. Node's fast paths (node:crypto, node:http) are reached
// only through platform.ts's nodeBuiltin, which answers undefined in a
// browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { build } from "esbuild";

const src = new URL("../src/", import.meta.url);

test("bundles for a browser worker without Node built-ins", async () => {
  const out = await build({
    entryPoints: [new URL("index.ts", src).pathname],
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    logLevel: "silent",
  });
  assert.equal(out.errors.length, 0);
  assert.ok(out.outputFiles[0]!.text.length > 0);
});

test("sources use no DOM and no Node globals", () => {
  for (const f of readdirSync(src).filter((n) => n.endsWith(".ts"))) {
    const text = readFileSync(new URL(f, src), "utf8");
    for (const bad of [/\bdocument\./, /\bwindow\./, /from "node:/, /\bprocess\./, /\bBuffer\./, /\brequire\(/]) {
      assert.doesNotMatch(text, bad, `${f} uses ${bad}`);
    }
    if (f !== "platform.ts") assert.doesNotMatch(text, /getBuiltinModule/, `${f} reaches a Node built-in other than through platform.ts`);
  }
});
