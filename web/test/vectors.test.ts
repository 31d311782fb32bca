// Checks every entry of docs/vectors.json against this package, as
// client/format/vectors_test.go does for the Go code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { hex, unhex, toUTF8, b64url } from "../src/bytes.js";
import { sha256, argon2, hkdf, aeadBackend, aeadOpen, aeadSeal, random, sha256Native, sha256Hasher, newFileHash, useNodeCrypto } from "../src/crypto.js";
import * as F from "../src/format.js";
import * as X from "../src/indexfile.js";
import { Chunker, gearTable, tableValues, MarkSet, chunkMin } from "../src/chunker.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const V: Any = JSON.parse(readFileSync(new URL("../../docs/vectors.json", import.meta.url), "utf8"));
const BS: number = V.block_size;
const P: number = V.payload_capacity;

function id(s: string): Uint8Array {
  const b = F.parseID(s);
  assert.ok(b, "id " + s);
  return b;
}

function checkLocator(got: F.Locator, want: Any, what: string): void {
  assert.equal(F.idString(got.id), want.id, what + " id");
  assert.equal(hex(got.proof), want.proof, what + " proof");
  assert.equal(hex(got.key), want.key, what + " key");
}

/** The AEAD and hash implementations this Node has: node:crypto's fast path (when present) and noble's, the browsers' one. */
const backends: boolean[] = (() => {
  useNodeCrypto(true);
  const node = aeadBackend() === "node";
  return node ? [true, false] : [false];
})();

/** A block vector, with each implementation: encrypting gives the block exactly, opening gives the payload. */
function checkBlock(v: Any): void {
  try {
    for (const on of backends) {
      useNodeCrypto(on);
      checkBlockWith(v);
    }
  } finally {
    useNodeCrypto(true);
  }
}

function checkBlockWith(v: Any): void {
  const bid = id(v.id);
  const key = unhex(v.key);
  assert.equal(hex(F.blockAD(bid)), v.ad, v.role + " ad");
  const block = F.encryptBlock(key, bid, unhex(v.payload), BS, unhex(v.nonce));
  assert.equal(block.length, BS);
  assert.equal(hex(block), v.block, v.role + " block");
  assert.equal(hex(F.decryptBlock(key, bid, block, BS)), v.payload, v.role + " payload");
  assert.equal(hex(F.etagOf(block)), v.etag, v.role + " etag");
  assert.equal(F.etagHeader(F.etagOf(block)), v.etag_header, v.role + " etag header");
  // tamper: one flipped bit anywhere fails authentication
  const bad = block.slice();
  bad[BS >> 1]! ^= 1;
  assert.throws(() => F.decryptBlock(key, bid, bad, BS), (e: Any) => e.kind === "tampered");
}

test("sizes", () => {
  assert.equal(V.version, 1);
  assert.equal(F.payloadCapacity(BS), P);
  assert.equal(F.inlineMax(BS), V.inline_max);
});

test("passwords, device key (§3, §4.1, §4.2)", async () => {
  for (const p of V.passwords) {
    assert.equal(F.normalizeUsername(p.username), p.username_normalized);
    assert.equal(hex(toUTF8(F.normalizePassword(p.password))), p.password_normalized);
    assert.equal(hex(F.salt(p.username)), p.salt);
    assert.deepEqual(p.argon2id, { time: 3, memory_kib: 65536, threads: 4, length: 32 });
    const m = await F.passwordMaster(p.username, p.password);
    assert.equal(hex(m), p.master);
    checkLocator(F.locatorOf(m), p.locator, "locator");
    if (p.device_key) {
      const d = unhex(p.device_key);
      assert.equal(F.deviceKeyText(d), p.device_key_file);
      assert.equal(hex(F.parseDeviceKey("  " + p.device_key_file + "\n")), p.device_key);
      assert.throws(() => F.parseDeviceKey("other:" + p.device_key_file));
      assert.equal(hex(F.withDevice(m, d)), p.device_master);
      checkLocator(F.locatorOf(F.withDevice(m, d)), p.device_locator, "device locator");
      checkLocator(await F.passwordLocator(p.username, p.password, d), p.device_locator, "device locator");
    }
  }
  // Argon2id itself (RFC 9106 parameters of §3)
  assert.equal(hex(await argon2(toUTF8(F.normalizePassword(V.passwords[0].password)), unhex(V.passwords[0].salt))), V.passwords[0].master);
});

test("recovery code (§4.3)", () => {
  const r = V.recovery;
  const code = unhex(r.code_bytes);
  assert.equal(F.recoveryCodeString(code), r.code);
  for (const p of r.parse) {
    if (p.valid) assert.equal(hex(F.parseRecoveryCode(p.input)), r.code_bytes, p.input);
    else assert.throws(() => F.parseRecoveryCode(p.input), (e: Any) => e.kind === "invalid", p.input);
  }
  assert.equal(hex(F.recoveryMaster(code)), r.master);
  checkLocator(F.recoveryLocator(code), r.locator, "recovery locator");
});

test("proofs (§5)", () => {
  for (const p of V.proofs) {
    const w = F.writeProof(unhex(p.owner_secret), id(p.id));
    assert.equal(hex(w), p.write_proof);
    assert.equal(b64url(w), p.write_proof_base64url);
    const r = F.renewProof(w);
    assert.equal(hex(r), p.renew_proof);
    assert.equal(b64url(r), p.renew_proof_base64url);
    assert.equal(hex(F.proofHash(r)), p.proof_hash);
  }
});

test("padmé (§9.5)", () => {
  for (const p of V.padme) {
    assert.equal(X.padme(p.n), p.padme, "padme " + p.n);
    assert.equal(X.paddedBlocks(p.n, P), p.padded_blocks, "padded " + p.n);
  }
});

function stream(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, o = 0; o < n; i++) {
    const h = sha256(toUTF8(label), F.u32be(i));
    out.set(h.subarray(0, Math.min(32, n - o)), o);
    o += 32;
  }
  return out;
}

async function* pieces(b: Uint8Array, size = 333): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

test("chunker (§10.2, §10.3)", async () => {
  const c = V.chunker;
  const ak = unhex(c.account_key);
  assert.equal(hex(F.chunkerSeed(ak)), c.seed);
  assert.equal(hex(hkdf(ak, "blindstore/v1/chunker")), c.seed);
  const t = gearTable(ak);
  assert.deepEqual(
    tableValues(t).map((v) => v.toString(16).padStart(16, "0")),
    c.table,
  );
  const input = stream(c.input_label, c.input_len);
  assert.equal(hex(sha256(input)), c.input_sha256);
  assert.equal(c.capacity, P);
  assert.equal(c.min, chunkMin(P));
  const ch = new Chunker(pieces(input), t, c.capacity);
  const got: Any[] = [];
  const old: { len: number; hash: string; mark: bigint }[] = [];
  for (let r = await ch.next(); r; r = await ch.next()) {
    got.push({ len: r.chunk.length, mark: r.mark.toString(16).padStart(16, "0") });
    old.push({ len: r.chunk.length, hash: hex(sha256(r.chunk)), mark: r.mark });
  }
  assert.deepEqual(got, c.chunks);

  // The edit: insert, cut again with the old chunks at hand.
  const e = c.edit;
  const ins = toUTF8(e.insert);
  const edited = new Uint8Array(input.length + ins.length);
  edited.set(input.subarray(0, e.insert_at));
  edited.set(ins, e.insert_at);
  edited.set(input.subarray(e.insert_at), e.insert_at + ins.length);
  const marks = new MarkSet();
  for (const o of old) marks.add(o.mark);
  const claim = new Map<string, number>();
  for (const o of old) claim.set(o.len + ":" + o.hash, (claim.get(o.len + ":" + o.hash) ?? 0) + 1);
  const ch2 = new Chunker(pieces(edited, 1000), t, c.capacity, marks);
  const got2: Any[] = [];
  for (let r = await ch2.next(); r; r = await ch2.next()) {
    const k = r.chunk.length + ":" + hex(sha256(r.chunk));
    const isOld = (claim.get(k) ?? 0) > 0;
    if (isOld) claim.set(k, claim.get(k)! - 1);
    ch2.matched(isOld);
    const g: Any = { len: r.chunk.length, mark: r.mark.toString(16).padStart(16, "0") };
    if (isOld) g.old = true;
    got2.push(g);
  }
  assert.deepEqual(got2, e.chunks);
});

function fileOf(f: Any): X.FileEntry {
  return {
    name: f.name,
    size: f.size,
    mode: f.mode,
    mtimeSec: f.mtime_sec,
    mtimeNsec: f.mtime_nsec,
    renewed: f.renewed,
    hash: unhex(f.hash),
    key: unhex(f.key),
    keyShared: f.key_shared,
    inline: f.inline ? unhex(f.inline) : undefined,
    chunks: f.chunks.map((c: Any) => ({ id: id(c.id), etag: unhex(c.etag), size: c.size, hash: unhex(c.hash), mark: BigInt("0x" + c.mark) })),
    manifest: f.manifest.map((r: Any) => ({ id: id(r.id), etag: unhex(r.etag) })),
  };
}

function refJSON(r: F.Ref): Any {
  return { id: F.idString(r.id), etag: hex(r.etag) };
}

test("account: roots, head, index tree, data blocks, share (§7–§11)", async () => {
  const a = V.account;
  const ak = unhex(a.account_key);
  const os = unhex(a.owner_secret);
  const root = { accountKey: ak, ownerSecret: os };
  assert.equal(hex(F.marshalRoot(root)), a.root_payload);
  assert.deepEqual(F.unmarshalRoot(unhex(a.root_payload)), root);
  const loc = await F.passwordLocator(a.username, a.password);
  checkBlock(a.root);
  assert.equal(a.root.id, F.idString(loc.id));
  assert.equal(a.root.write_proof, hex(loc.proof));
  checkBlock(a.recovery_root);
  assert.equal(hex(F.headMaster(root)), a.head_master);
  const hloc = F.headLocator(root);
  checkLocator(hloc, a.head_locator, "head locator");

  // head
  const h = a.head;
  checkBlock(h.block);
  const head = F.unmarshalHead(unhex(h.block.payload));
  assert.equal(head.version, h.version);
  assert.equal(head.generation, h.generation);
  assert.deepEqual(head.index.map(refJSON), h.dirs);
  assert.deepEqual(
    head.roots.map((r) => ({ kind: r.kind, id: F.idString(r.id), proof: hex(r.proof) })),
    h.roots,
  );
  assert.equal(hex(F.marshalHead(head)), h.block.payload);

  // index: the tree as a commit from an empty account writes it
  const idx: X.Index = { generation: a.index.generation, renewed: a.index.renewed, files: a.index.files.map(fileOf) };
  X.validateIndex(idx);
  for (const b of a.index_blocks) checkBlock(b);
  let k = 0;
  const { tree, obsolete } = X.updateTree({ dirs: [], renewed: 0 }, { generation: 0, renewed: 0, files: [] }, idx, P, (p) => {
    const v = a.index_blocks[k++];
    assert.equal(hex(p), v.payload, "index block " + (k - 1) + " (" + v.role + ")");
    return { id: id(v.id), etag: unhex(v.etag) };
  });
  assert.equal(k, a.index_blocks.length);
  assert.equal(obsolete.length, 0);
  assert.deepEqual(
    tree.dirs.map((d, i) => ({
      block: refJSON(d.block),
      ...(i === 0 ? { renewed: tree.renewed } : {}),
      leaves: d.leaves.map((l) => ({ len: l.len, files: l.files, blocks: l.blocks.map(refJSON) })),
    })),
    a.tree,
  );
  // read back: dirs, leaves, assemble
  const dirs = a.tree.map((d: Any) => X.decodeDir(F.decryptBlock(ak, id(d.block.id), unhex(a.index_blocks.find((b: Any) => b.id === d.block.id).block), BS), P));
  const leafFiles = dirs.map((d: X.Dir) =>
    d.leaves.map((l) => {
      const ps = l.blocks.map((r) => F.decryptBlock(ak, r.id, unhex(a.index_blocks.find((b: Any) => b.id === F.idString(r.id)).block), BS));
      return X.decodeLeaf(X.joinLeaf(ps, l.len, P));
    }),
  );
  const back = X.assemble(head.generation, head.index, dirs, leafFiles);
  assert.equal(back.index.renewed, a.index.renewed);
  assert.deepEqual(back.index.files, idx.files);
  for (const f of a.index.files) {
    const content = unhex(f.content);
    assert.equal(hex(sha256(content)), f.hash);
    assert.equal(content.length, f.size);
  }

  // data blocks: each the chunk of the big file, keyed by its file key
  const big = a.index.files.find((f: Any) => f.name === a.share.file);
  const content = unhex(big.content);
  let off = 0;
  for (const [i, b] of a.data_blocks.entries()) {
    checkBlock(b);
    const c = big.chunks[i];
    assert.equal(b.id, c.id);
    assert.equal(b.key, big.key);
    assert.equal(b.payload, hex(content.subarray(off, off + c.size)));
    assert.equal(b.write_proof, hex(F.writeProof(os, id(b.id))));
    off += c.size;
  }
  // chunks of the big file are what the chunker makes of its content
  const ch = new Chunker(pieces(content), gearTable(ak), P);
  const cuts: Any[] = [];
  for (let r = await ch.next(); r; r = await ch.next()) cuts.push({ size: r.chunk.length, mark: r.mark.toString(16).padStart(16, "0"), hash: hex(sha256(r.chunk)) });
  assert.deepEqual(cuts, big.chunks.map((c: Any) => ({ size: c.size, mark: c.mark, hash: c.hash })));

  // share
  const s = a.share;
  const mid = id(s.manifest_id);
  const ck = F.capKey(unhex(big.key), mid);
  assert.equal(hex(ck), s.cap_key);
  assert.equal(F.capabilityString({ manifest: mid, key: ck }), s.capability);
  const m = { ...fileOf(big), name: "big.bin", manifest: [], renewed: 0, keyShared: false };
  assert.equal(hex(X.encodeLeafChecked([m])), s.leaf);
  assert.equal(unhex(s.leaf).length, s.encoded_len);
  const payloads = X.splitPadded(unhex(s.leaf), P);
  assert.equal(payloads.length, s.manifest_blocks.length);
  s.manifest_blocks.forEach((b: Any, i: number) => {
    checkBlock(b);
    assert.equal(b.payload, hex(payloads[i]!));
  });
  checkBlock(s.pointer);
  const refs = s.manifest_blocks.map((b: Any) => ({ id: id(b.id), etag: unhex(b.etag) }));
  assert.equal(hex(F.marshalPointer(s.encoded_len, refs)), s.pointer.payload);
  const ptr = F.unmarshalPointer(unhex(s.pointer.payload), BS);
  assert.equal(ptr.version, 2);
  assert.equal(ptr.encodedLen, s.encoded_len);
  const leaf = X.decodeLeaf(X.joinPadded(payloads, ptr.encodedLen));
  assert.deepEqual(leaf, [m]);
  // the owner's entry lists the manifest, pointer first
  assert.deepEqual(big.manifest.map((r: Any) => r.id), [s.pointer.id, ...s.manifest_blocks.map((b: Any) => b.id)]);
});

test("legacy format 1 (§8.3, §9.6)", async () => {
  const l = V.legacy;
  const a = V.account;
  checkBlock(l.head_v1);
  for (const b of l.index_v1_blocks) checkBlock(b);
  const h = F.unmarshalHead(unhex(l.head_v1.payload));
  assert.equal(h.version, 1);
  const payloads = l.index_v1_blocks.map((b: Any) => F.decryptBlock(unhex(a.account_key), id(b.id), unhex(b.block), BS));
  const enc = X.joinPadded(payloads, h.indexLen);
  assert.equal(hex(enc), l.index_v1_encoded);
  const x = await X.decodeV1(enc);
  const body = X.decodeV1Body(unhex(l.index_v1_body));
  assert.deepEqual(x, body);
  assert.equal(x.generation, h.generation);
  assert.ok(x.files.length > 0);
  // a truncated stream is refused
  await assert.rejects(X.decodeV1(enc.subarray(0, enc.length - 4)));
});

test("capability strings (§11.1)", () => {
  for (const c of V.capability_strings) {
    if (c.valid) assert.equal(F.capabilityString(F.parseCapability(c.input)), c.input.trim(), c.input);
    else assert.throws(() => F.parseCapability(c.input), (e: Any) => e.kind === "invalid", c.input);
  }
});

test("node:crypto's XChaCha20-Poly1305 and SHA-256 are noble's, byte for byte", async (t) => {
  if (backends.length < 2) {
    // Node before 20.16 has no process.getBuiltinModule: noble is the only path, and the vectors above checked it.
    t.diagnostic("no node:crypto fast path in this Node: noble only");
    return;
  }
  try {
    for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 16340, 65492, 1 << 20]) {
      const key = random(32);
      const nonce = random(24);
      const ad = random(n % 40);
      const msg = random(n);
      useNodeCrypto(true);
      const a = aeadSeal(key, nonce, msg, ad);
      const ha = sha256(msg);
      const hna = await sha256Native(msg);
      const hs = (await sha256Hasher())(msg);
      const fa = await newFileHash();
      fa.update(msg.subarray(0, n >> 1));
      fa.update(msg.subarray(n >> 1));
      useNodeCrypto(false);
      const b = aeadSeal(key, nonce, msg, ad);
      assert.equal(hex(a), hex(b), `seal of ${n} bytes`);
      assert.equal(hex(ha), hex(sha256(msg)), `sha256 of ${n} bytes`);
      assert.equal(hex(hna), hex(await sha256Native(msg)), `platform sha256 of ${n} bytes`);
      const wasm = await sha256Hasher();
      assert.equal(hex(hs), hex(wasm(msg)), `synchronous sha256 of ${n} bytes`);
      assert.equal(hex(wasm(msg.subarray(0, n >> 1))), hex(sha256(msg.subarray(0, n >> 1))), "the WebAssembly hasher starts afresh each time");
      const fb = await newFileHash();
      fb.update(msg);
      assert.equal(hex(fa.digest()), hex(fb.digest()), `incremental sha256 of ${n} bytes`);
      // Each opens what the other sealed, and refuses it altered.
      assert.equal(hex(aeadOpen(key, nonce, a, ad)), hex(msg));
      useNodeCrypto(true);
      assert.equal(hex(aeadOpen(key, nonce, b, ad)), hex(msg));
      // A caller's output buffer, as encryptBlock passes one.
      const out = new Uint8Array(n + 16 + 7);
      aeadSeal(key, nonce, msg, ad, out.subarray(7));
      assert.equal(hex(out.subarray(7)), hex(a));
      for (const on of [true, false]) {
        useNodeCrypto(on);
        const bad = a.slice();
        bad[(n * 7) % bad.length]! ^= 0x20;
        assert.throws(() => aeadOpen(key, nonce, bad, ad), `${on ? "node" : "noble"} refuses an altered seal of ${n} bytes`);
        const otherAD = new Uint8Array(ad.length + 1);
        assert.throws(() => aeadOpen(key, nonce, a, otherAD), `${on ? "node" : "noble"} refuses another AD`);
      }
    }
  } finally {
    useNodeCrypto(true);
  }
});
