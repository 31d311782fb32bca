// Reading several blocks a request (POST /v1/read): the records of an
// answer parsed as the body comes in, however it is split; an answer cut
// short or with a status byte other than found / not found is never data.
//
// Then over a real blindstored (through the counting proxy of the
// harness): a get reads a file with a few POST /v1/read instead of a GET
// a chunk and gets it back byte for byte (the index too is read so); a missing block is not found; a
// tampered one is caught; an answer cut short is retried for the rest; a
// server that does not advertise read_batch is read block by block.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Account, BlindError, readAll, Remote, signup } from "../src/index.js";
import { readChunks } from "../src/blockwork.js";
import { aeadBackend, sha256Hasher, useNodeCrypto } from "../src/crypto.js";
import { etagOf, newID } from "../src/format.js";
import { lookup, type Index } from "../src/indexfile.js";
import { RecordReader } from "../src/remote.js";
import { randomBytes, startProxy, startServer, type Server } from "./harness.js";

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

// --- over a real blindstored ---

const SERVER_BS = 16384;
const PASSWORD = "correct horse battery staple 42";
let srv: Server | undefined;
let owner: Account;
let content: Uint8Array;

before(async () => {
  srv = await startServer({ blockSize: SERVER_BS });
  const { account } = await signup(new Remote(srv.url), "reader", PASSWORD);
  owner = account;
  // Over 64 chunks: a chunk holds at most a block's payload.
  content = randomBytes(70 * SERVER_BS, 21);
  await owner.put("big.bin", content);
});
after(async () => {
  await srv?.stop();
});

function chunksOf(a: Account, name: string) {
  return lookup((a as unknown as { index: Index }).index, name)!;
}

test("the server advertises read_batch; a get of a file of 64+ chunks reads them with a few POST /v1/read", async () => {
  const direct = new Remote(srv!.url);
  const cfg = await direct.config();
  assert.equal(cfg.limits.read_batch, 256, "read_batch is clamp(4 MiB / block_size, 1, 256)");
  assert.equal(await direct.readBatch(), 256);
  const f = chunksOf(owner, "big.bin");
  assert.ok(f.chunks.length >= 64, `${f.chunks.length} chunks`);
  const proxy = await startProxy(srv!.url);
  try {
    const a = await Account.resume(new Remote(proxy.url), owner.exportState());
    assert.ok(proxy.counts.reads >= 1, "the index blocks came by POST /v1/read too");
    proxy.reset();
    const got = await readAll(await a.get("big.bin"));
    assert.deepEqual(got, content);
    assert.equal(proxy.counts.gets, 0, "no block was read by GET");
    assert.equal(proxy.counts.readBlocks, f.chunks.length, "every chunk was read once");
    assert.ok(proxy.counts.reads >= 1 && proxy.counts.reads <= 4, `${proxy.counts.reads} POST /v1/read for ${f.chunks.length} chunks`);
  } finally {
    await proxy.close();
  }
});

test("readMany hands out each block as GET reads it, in order of the ids, repeats included", async () => {
  const remote = new Remote(srv!.url);
  const ids = chunksOf(owner, "big.bin").chunks.slice(0, 5).map((c) => c.id);
  const asked = [ids[3]!, ids[0]!, ids[3]!, ids[4]!];
  const got: { i: number; data: Uint8Array; etag: Uint8Array }[] = [];
  await remote.readMany(asked, (i, data, etag) => got.push({ i, data: data.slice(), etag: etag.slice() }));
  assert.deepEqual(
    got.map((g) => g.i),
    [0, 1, 2, 3],
  );
  for (const [k, g] of got.entries()) {
    const one = await remote.get(asked[k]!);
    assert.deepEqual(g.data, one.data);
    assert.deepEqual(g.etag, one.etag);
    assert.deepEqual(g.etag, etagOf(g.data));
  }
});

test("a missing block is not found, through readMany and through a file's chunks", async () => {
  const remote = new Remote(srv!.url);
  const f = chunksOf(owner, "big.bin");
  const real = f.chunks[0]!;
  await assert.rejects(
    remote.readMany([real.id, newID()], () => {}),
    (e: unknown) => e instanceof BlindError && e.kind === "not found" && e.exitCode === 4,
  );
  const hashOf = await sha256Hasher();
  await assert.rejects(
    readChunks(remote, hashOf, f.key, SERVER_BS, [real, { id: newID(), size: real.size, hash: real.hash }]),
    (e: unknown) => e instanceof BlindError && e.kind === "not found" && /gone from the server/.test(e.message),
  );
  // The chunks that are there read as the index recorded them.
  const two = await readChunks(remote, hashOf, f.key, SERVER_BS, f.chunks.slice(0, 2));
  assert.deepEqual(two[0], content.subarray(0, f.chunks[0]!.size));
});

test("a tampered block of a POST /v1/read answer is caught, and nothing is given out", async () => {
  const proxy = await startProxy(srv!.url);
  try {
    const remote = new Remote(proxy.url);
    const a = await Account.resume(remote, owner.exportState());
    proxy.tamper = true;
    proxy.reset();
    let received = 0;
    await assert.rejects(
      (async () => readAll(await a.get("big.bin", { onProgress: (n) => (received = n) })))(),
      (e: unknown) => e instanceof BlindError && e.kind === "tampered" && e.exitCode === 7,
    );
    assert.equal(received, 0, "nothing was given out");
    assert.ok(proxy.counts.reads > 0 && proxy.counts.gets === 0, "the blocks came by POST /v1/read");
    // readMany holds each block to its ETag in the record.
    const ids = chunksOf(owner, "big.bin").chunks.slice(0, 3).map((c) => c.id);
    await assert.rejects(
      remote.readMany(ids, () => {}),
      (e: unknown) => e instanceof BlindError && e.kind === "tampered",
    );
  } finally {
    await proxy.close();
  }
});

test("an answer cut short is retried for the blocks not yet read; one always cut fails as a network error", async () => {
  const proxy = await startProxy(srv!.url);
  try {
    const a = await Account.resume(new Remote(proxy.url), owner.exportState());
    const n = chunksOf(owner, "big.bin").chunks.length;
    proxy.reset();
    proxy.cutReads = 1;
    assert.deepEqual(await readAll(await a.get("big.bin")), content);
    assert.equal(proxy.cutReads, 0);
    assert.ok(proxy.counts.reads >= 2, `${proxy.counts.reads} reads`);
    assert.ok(proxy.counts.readBlocks < 2 * n, `the retry asked for the rest only: ${proxy.counts.readBlocks} ids for ${n} chunks`);
    proxy.cutReads = 1000;
    await assert.rejects(
      (async () => readAll(await a.get("big.bin")))(),
      (e: unknown) => e instanceof BlindError && e.kind === "network" && /broke off|closed/.test(e.message),
    );
  } finally {
    await proxy.close();
  }
});

test("without read_batch in the server's configuration a get reads block by block", async () => {
  const proxy = await startProxy(srv!.url);
  try {
    proxy.hideReadBatch = true;
    const remote = new Remote(proxy.url);
    const a = await Account.resume(remote, owner.exportState());
    assert.equal(await remote.readBatch(), 0);
    const n = chunksOf(owner, "big.bin").chunks.length;
    proxy.reset();
    assert.deepEqual(await readAll(await a.get("big.bin")), content);
    assert.equal(proxy.counts.reads, 0);
    assert.equal(proxy.counts.gets, n);
    const ids = chunksOf(owner, "big.bin").chunks.slice(0, 3).map((c) => c.id);
    const seen: number[] = [];
    await remote.readMany(ids, (i, data, etag) => {
      assert.deepEqual(etag, etagOf(data));
      seen.push(i);
    });
    assert.deepEqual(seen.sort(), [0, 1, 2]);
  } finally {
    await proxy.close();
  }
});

test("with WebCrypto (the browser's path) readChunks checks each chunk's SHA-256 natively: same chunks, and a chunk that is not the recorded one is tampered", async () => {
  const f = chunksOf(owner, "big.bin");
  const remote = new Remote(srv!.url);
  const hashOf = await sha256Hasher();
  const cs = f.chunks.slice(0, 20);
  const inLine = await readChunks(remote, hashOf, f.key, SERVER_BS, cs);
  useNodeCrypto(false); // noble and WebCrypto, as in a browser
  try {
    assert.equal(aeadBackend(), "noble");
    const native = await readChunks(remote, hashOf, f.key, SERVER_BS, cs);
    assert.deepEqual(native, inLine);
    // The index records another chunk's hash for the sixth block (blocks
    // swapped): caught, whatever order the digests come back in.
    const swapped = cs.map((c, i) => (i === 5 ? { ...c, hash: cs[6]!.hash } : c));
    await assert.rejects(
      readChunks(remote, hashOf, f.key, SERVER_BS, swapped),
      (e: unknown) => e instanceof BlindError && e.kind === "tampered" && /another chunk/.test(e.message),
    );
    // And through a get, by the file's whole content.
    const a = await Account.resume(remote, owner.exportState());
    assert.deepEqual(await readAll(await a.get("big.bin")), content);
  } finally {
    useNodeCrypto(true);
  }
});
