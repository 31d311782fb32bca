// Streaming with bounded memory, in a process of its own (a fresh heap makes
// the forced collections of the sampler quick): a 48 MiB file made as it
// is pulled goes up and comes down without the client holding it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Remote, signup } from "../src/index.js";
import { pieces } from "../src/stream.js";
import { randomBytes, startServer, type Server } from "./harness.js";

const PASSWORD = "correct horse battery staple 42";
let srv: Server;

before(async () => {
  srv = await startServer({ blockSize: 16384 });
});
after(async () => {
  await srv?.stop();
});

test("put and get stream a large file with bounded memory", async (t) => {
  const remote = new Remote(srv.url);
  const { account } = await signup(remote, "streamer", PASSWORD);
  const size = 48 << 20;
  const piece = 1 << 20;
  // The source makes its bytes as they are pulled: the file never exists whole.
  const source = (seed: number) => {
    let made = 0;
    return new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (made >= size) return ctl.close();
        ctl.enqueue(randomBytes(piece, seed + made));
        made += piece;
      },
    });
  };
  const digestOf = async (s: ReadableStream<Uint8Array>) => {
    const h = createHash("sha256");
    for await (const p of pieces(s)) h.update(p);
    return h.digest("hex");
  };
  // Live memory, not garbage V8 has not collected yet: npm test runs node with --expose-gc.
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, "run with node --expose-gc (npm test does)");
  gc();
  const base = process.memoryUsage();
  let peak = 0;
  const sample = setInterval(() => {
    // Twice: V8 frees the backing stores of dead ArrayBuffers (node:crypto's
    // and node:http's Buffers) by a sweep that the first collection only
    // starts; the second finishes it, so garbage is not counted as live.
    gc();
    gc();
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
  }, 100); // a full collection each time: sampling more often slows the run down many times
  let got = "";
  try {
    await account.put("big.bin", source(100));
    got = await digestOf(await account.get("big.bin"));
  } finally {
    clearInterval(sample);
  }
  assert.equal(got, await digestOf(source(100)));
  t.diagnostic(`live memory grew by at most ${(peak / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(peak < 32 << 20, `memory grew by ${(peak / 2 ** 20).toFixed(1)} MiB for a 48 MiB file`);
});
