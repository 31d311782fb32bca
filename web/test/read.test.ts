// Reading several blocks a request (POST /v1/read): the records of an
// answer parsed as the body comes in, however it is split; an answer cut
// short or with a status byte other than found / not found is never data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BlindError } from "../src/errors.js";
import { RecordReader } from "../src/remote.js";
import { randomBytes } from "./harness.js";

const BS = 1024;
const REC = 1 + 16 + BS;

/** An answer of n found records: record i holds block i and ETag i (as the server lays them out). */
function answer(n: number, seed = 1): { body: Uint8Array; blocks: Uint8Array[]; etags: Uint8Array[] } {
  const body = new Uint8Array(n * REC);
  const blocks: Uint8Array[] = [];
  const etags: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const etag = randomBytes(16, seed * 1000 + i * 2 + 1);
    const block = randomBytes(BS, seed * 1000 + i * 2 + 2);
    body[i * REC] = 0;
    body.set(etag, i * REC + 1);
    body.set(block, i * REC + 17);
    blocks.push(block);
    etags.push(etag);
  }
  return { body, blocks, etags };
}

/** Feeds body to r in pieces of the sizes given, in turn; each piece is overwritten after push, as a socket's read buffer is. */
function feed(r: RecordReader, body: Uint8Array, sizes: number[]): void {
  let o = 0;
  for (let k = 0; o < body.length; k++) {
    const n = Math.min(sizes[k % sizes.length]!, body.length - o);
    const piece = body.slice(o, o + n);
    r.push(piece);
    piece.fill(0xee);
    o += n;
  }
}

test("records come out whole and in order however the body is split", () => {
  const n = 5;
  const { body, blocks, etags } = answer(n);
  for (const sizes of [[body.length], [1], [7], [REC], [REC - 1], [REC + 1], [16, 17, 1, 3000], [2 * REC + 5]]) {
    const got: { i: number; data: Uint8Array; etag: Uint8Array }[] = [];
    const r = new RecordReader(n, BS, (i, data, etag) => got.push({ i, data: data.slice(), etag: etag.slice() }));
    feed(r, body, sizes);
    assert.equal(r.end(), undefined, `pieces of ${sizes}`);
    assert.equal(r.done, n);
    assert.deepEqual(
      got.map((g) => g.i),
      [0, 1, 2, 3, 4],
    );
    got.forEach((g, i) => {
      assert.deepEqual(g.data, blocks[i], `pieces of ${sizes}: block ${i}`);
      assert.deepEqual(g.etag, etags[i], `pieces of ${sizes}: ETag ${i}`);
    });
  }
});

test("a body cut short is an error, not data: the whole records before the cut are counted", () => {
  const n = 3;
  const { body } = answer(n);
  for (const cut of [0, 1, REC - 1, REC, REC + 17, body.length - 1]) {
    let delivered = 0;
    const r = new RecordReader(n, BS, () => delivered++);
    feed(r, body.subarray(0, cut), [500]);
    const err = r.end();
    assert.ok(err instanceof Error, `cut at ${cut}`);
    // Not a BlindError: the caller takes it as a transport failure and retries the rest.
    assert.ok(!(err instanceof BlindError), `cut at ${cut}: ${err}`);
    assert.match(err.message, /broke off after \d of 3 blocks/);
    assert.equal(delivered, Math.floor(cut / REC));
    assert.equal(r.done, delivered);
  }
});

test("a status byte other than 0 or 1 is a protocol error; the record is not handed out", () => {
  const { body } = answer(3);
  body[REC] = 2;
  const got: number[] = [];
  const r = new RecordReader(3, BS, (i) => got.push(i));
  feed(r, body, [100]);
  assert.deepEqual(got, [0]);
  const err = r.end();
  assert.ok(err instanceof BlindError && err.kind === "network", String(err));
  assert.match(err.message, /status 2/);
  for (const status of [0xff, 0x30]) {
    const { body: b } = answer(1);
    b[0] = status;
    const r2 = new RecordReader(1, BS, () => assert.fail("a record of a bad status was handed out"));
    r2.push(b);
    assert.ok(r2.failure instanceof BlindError && r2.failure.kind === "network");
  }
});

test("status 1 is not found, as a GET's 404; blocks after it are not handed out", () => {
  const { body } = answer(3);
  body[REC] = 1;
  body.fill(0, REC + 1, 2 * REC);
  const got: number[] = [];
  const r = new RecordReader(3, BS, (i) => got.push(i));
  feed(r, body, [body.length]);
  assert.deepEqual(got, [0]);
  const err = r.end();
  assert.ok(err instanceof BlindError && err.kind === "not found" && err.exitCode === 4, String(err));
});

test("bytes beyond the records asked for, or an error of the reader of a record, fail the read", () => {
  const { body } = answer(2);
  const r = new RecordReader(1, BS, () => {});
  r.push(body);
  assert.ok(r.failure instanceof BlindError && r.failure.kind === "network", String(r.failure));
  assert.match(r.failure.message, /more than the 1 blocks/);
  const bad = new BlindError("tampered", "block 1 does not open");
  const r2 = new RecordReader(2, BS, (i) => {
    if (i === 1) throw bad;
  });
  r2.push(body);
  assert.equal(r2.end(), bad);
  assert.equal(r2.done, 1);
});
