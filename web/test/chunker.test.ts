// What an edit of one byte costs, by where the byte is: inside a chunk it
// sends that chunk only; among the last GEAR_WINDOW bytes of a chunk it is
// part of the chunk's mark (spec §10.3), the cut moves, and the next chunk
// is sent too. The interop test's counts rely on the first case.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Chunker, GEAR_WINDOW, gearTable, MarkSet } from "../src/chunker.js";
import { randomBytes } from "./harness.js";

const CAP = 16384 - 44;

async function* pieces(b: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += 1 << 16) yield b.subarray(o, Math.min(b.length, o + (1 << 16)));
}

const keyOf = (c: Uint8Array) => c.length + ":" + createHash("sha256").update(c).digest("hex");

async function chunks(data: Uint8Array, key: Uint8Array, marks?: MarkSet, old?: Set<string>): Promise<{ keys: string[]; sizes: number[]; marks: bigint[]; sent: number }> {
  const ch = new Chunker(pieces(data), gearTable(key), CAP, marks);
  const out = { keys: [] as string[], sizes: [] as number[], marks: [] as bigint[], sent: 0 };
  for (let r = await ch.next(); r; r = await ch.next()) {
    const k = keyOf(r.chunk);
    const kept = old?.has(k) ?? false;
    ch.matched(kept);
    if (!kept) out.sent++;
    out.keys.push(k);
    out.sizes.push(r.chunk.length);
    out.marks.push(r.mark);
  }
  return out;
}

test("a one-byte edit sends one chunk unless the byte is in a chunk's mark window", async () => {
  const data = randomBytes(400_000, 3);
  for (let seed = 1; seed <= 4; seed++) {
    const key = randomBytes(32, 100 + seed);
    const first = await chunks(data, key);
    const marks = new MarkSet();
    for (const m of first.marks) marks.add(m);
    const old = new Set(first.keys);
    // The chunk holding byte 200 000: its start and end.
    let start = 0;
    let i = 0;
    while (start + first.sizes[i]! <= 200_000) start += first.sizes[i++]!;
    const end = start + first.sizes[i]!;
    const flip = async (at: number) => {
      const d = data.slice();
      d[at]! ^= 0xff;
      return (await chunks(d, key, marks, old)).sent;
    };
    assert.equal(await flip(start + 100), 1, `seed ${seed}: a byte mid-chunk`);
    assert.equal(await flip(end - GEAR_WINDOW - 1), 1, `seed ${seed}: the byte just before the mark window`);
    assert.ok((await flip(end - 10)) >= 2, `seed ${seed}: a byte in the mark window moves the cut`);
  }
});
