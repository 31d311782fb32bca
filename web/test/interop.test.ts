// Interop over a real blindstored: files, edits, capabilities and accounts
// move between this client and the Go client's CLI (blind) in both
// directions, byte-compared; a tampering server is caught; a server that
// charges Privacy Pass tokens works from TypeScript.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Remote, signup, login, loginRecovery, fetchCapability, Account, BlindError, TokenWallet, readAll } from "../src/index.js";
import { lookup, type Index } from "../src/indexfile.js";
import { blind, blindOK, randomBytes, startProxy, startServer, tempDir, type Server, invite } from "./harness.js";

const PASSWORD = "correct horse battery staple 42";
const BS = 16384;
let srv: Server;

before(async () => {
  srv = await startServer({ blockSize: BS });
});
after(async () => {
  await srv?.stop();
});

function env(extra: Record<string, string> = {}) {
  return { BLIND_PASSWORD: PASSWORD, ...extra };
}

async function blindSignup(dir: string, url: string, user: string, extra: string[] = []): Promise<string> {
  return blindOK(dir, ["--server", url, "signup", "--user", user, ...extra], env());
}

function insertAt(b: Uint8Array, at: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + ins.length);
  out.set(b.subarray(0, at));
  out.set(ins, at);
  out.set(b.subarray(at), at + ins.length);
  return out;
}

test("a file put by blind reads back identically in TypeScript, and the other way", async () => {
  const dir = tempDir("blind-cfg-");
  await blindSignup(dir, srv.url, "alice");
  const data = randomBytes(700_000, 7);
  const f = join(dir, "a.bin");
  writeFileSync(f, data);
  await blindOK(dir, ["put", f, "--as", "docs/a.bin"], env());
  // a small (inline) file and an empty one too
  writeFileSync(join(dir, "small.txt"), "hello from Go\n");
  await blindOK(dir, ["put", join(dir, "small.txt"), "--as", "small.txt"], env());
  writeFileSync(join(dir, "empty"), "");
  await blindOK(dir, ["put", join(dir, "empty"), "--as", "empty"], env());

  const remote = new Remote(srv.url);
  const acct = await login(remote, "alice", PASSWORD);
  const names = (await acct.list()).map((f) => f.name);
  assert.deepEqual(names, ["docs/a.bin", "empty", "small.txt"]);
  assert.deepEqual(await readAll(await acct.get("docs/a.bin")), data);
  assert.equal(new TextDecoder().decode(await readAll(await acct.get("small.txt"))), "hello from Go\n");
  assert.equal((await readAll(await acct.get("empty"))).length, 0);

  // TypeScript puts, blind gets
  const mine = randomBytes(1_000_000, 9);
  let progress = 0;
  const info = await acct.put("from-ts/b.bin", new Blob([mine]), { onProgress: (n) => (progress = n), modified: new Date(1_700_000_000_123) });
  assert.equal(info.size, mine.length);
  assert.equal(progress, mine.length);
  await acct.put("from-ts/tiny.txt", new TextEncoder().encode("hi from TS"));
  const out = join(dir, "b.out");
  await blindOK(dir, ["get", "from-ts/b.bin", "-o", out], env());
  assert.deepEqual(new Uint8Array(readFileSync(out)), mine);
  await blindOK(dir, ["get", "from-ts/tiny.txt", "-o", join(dir, "tiny.out")], env());
  assert.equal(readFileSync(join(dir, "tiny.out"), "utf8"), "hi from TS");
  const ls = await blindOK(dir, ["--json", "ls"], env());
  assert.match(ls, /from-ts\/b\.bin/);

  // a ReadableStream source, bigger than the inline limit, put and read back
  const streamed = randomBytes(300_000, 3);
  await acct.put("stream.bin", new Blob([streamed]).stream());
  await blindOK(dir, ["get", "stream.bin", "-o", join(dir, "s.out")], env());
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, "s.out"))), streamed);

  // rm and mv by TypeScript, seen by blind
  await acct.mv("stream.bin", "moved/stream.bin");
  await acct.rm("empty");
  const ls2 = await blindOK(dir, ["ls"], env());
  assert.match(ls2, /moved\/stream\.bin/);
  assert.doesNotMatch(ls2, /^empty/m);
});

test("an edit by one client after the other sends only the changed chunks", async () => {
  const dir = tempDir("blind-cfg-");
  await blindSignup(dir, srv.url, "edith");
  const proxy = await startProxy(srv.url);
  try {
    const data = randomBytes(1_200_000, 11);
    const f = join(dir, "e.bin");
    writeFileSync(f, data);
    await blindOK(dir, ["put", f, "--as", "e.bin"], env());

    // TypeScript edits blind's file: an insertion in the middle.
    const acct = await login(new Remote(proxy.url), "edith", PASSWORD);
    const chunks = Math.ceil(data.length / (BS - 44));
    const edited = insertAt(data, 600_000, new TextEncoder().encode("an edit made in TypeScript"));
    proxy.reset();
    await acct.put("e.bin", edited);
    assert.ok(proxy.counts.blockPuts >= 1 && proxy.counts.blockPuts <= 2, `TypeScript sent ${proxy.counts.blockPuts} data blocks for a one-place edit of a ${chunks}-chunk file`);
    await blindOK(dir, ["get", "e.bin", "-o", join(dir, "e1.out")], env());
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, "e1.out"))), edited);

    // blind edits TypeScript's version, through the counting proxy.
    const edited2 = insertAt(edited, 200_000, new TextEncoder().encode("and one made by blind"));
    writeFileSync(f, edited2);
    const pdir = tempDir("blind-cfg-");
    await blindOK(pdir, ["--server", proxy.url, "login", "--user", "edith"], env());
    proxy.reset();
    await blindOK(pdir, ["put", f, "--as", "e.bin"], env());
    assert.ok(proxy.counts.blockPuts >= 1 && proxy.counts.blockPuts <= 2, `blind sent ${proxy.counts.blockPuts} data blocks for a one-place edit`);
    const back = await login(new Remote(srv.url), "edith", PASSWORD);
    assert.deepEqual(await readAll(await back.get("e.bin")), edited2);

    // TypeScript edits again after blind: still only the changed chunk.
    // A byte among the last GEAR_WINDOW of a chunk is part of that chunk's
    // mark, so changing it moves the cut and legitimately sends the next
    // chunk too (spec §10.3); the chunk boundaries depend on the account's
    // random key, so the flipped byte is placed mid-chunk from the index.
    const acct2 = await login(new Remote(proxy.url), "edith", PASSWORD);
    const held = lookup((acct2 as unknown as { index: Index }).index, "e.bin")!;
    let start = 0;
    for (const c of held.chunks) {
      if (start + c.size > 900_000) break;
      start += c.size;
    }
    const edited3 = edited2.slice();
    edited3[start + 100]! ^= 0xff;
    proxy.reset();
    await acct2.put("e.bin", edited3);
    assert.equal(proxy.counts.blockPuts, 1, "a one-byte change sends one block");
    await blindOK(dir, ["get", "e.bin", "-o", join(dir, "e3.out")], env());
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, "e3.out"))), edited3);
  } finally {
    await proxy.close();
  }
});

test("a capability made by either client opens in the other", async () => {
  const dir = tempDir("blind-cfg-");
  await blindSignup(dir, srv.url, "sharer");
  const data = randomBytes(250_000, 5);
  writeFileSync(join(dir, "s.bin"), data);
  await blindOK(dir, ["put", join(dir, "s.bin"), "--as", "photos/s.bin"], env());
  const cap = (await blindOK(dir, ["share", "photos/s.bin"], env())).trim().split(/\s+/).find((w) => w.startsWith("blind1:"))!;
  assert.ok(cap, "blind share printed a capability");

  const remote = new Remote(srv.url);
  const got = await fetchCapability(remote, cap);
  assert.equal(got.name, "s.bin");
  assert.equal(got.size, data.length);
  assert.deepEqual(await readAll(got.body), data);

  const acct = await login(remote, "sharer", PASSWORD);
  // sharing again gives the same capability
  assert.equal(await acct.share("photos/s.bin"), cap);
  const mine = randomBytes(80_000, 6);
  await acct.put("to-share.bin", mine);
  const cap2 = await acct.share("to-share.bin");
  const out = join(dir, "fetched.bin");
  await blindOK(tempDir("blind-anon-"), ["--server", srv.url, "fetch", cap2, "-o", out]);
  assert.deepEqual(new Uint8Array(readFileSync(out)), mine);
  // an inline file shares too
  await acct.put("note.txt", new TextEncoder().encode("shared note"));
  const cap3 = await acct.share("note.txt");
  await blindOK(tempDir("blind-anon-"), ["--server", srv.url, "fetch", cap3, "-o", join(dir, "note.out")]);
  assert.equal(readFileSync(join(dir, "note.out"), "utf8"), "shared note");
  // a wrong key is refused with a typed error
  const wrong = cap2.slice(0, -4) + (cap2.endsWith("AAAA") ? "BBBB" : "AAAA");
  await assert.rejects(fetchCapability(remote, wrong), (e: unknown) => e instanceof BlindError && (e.kind === "tampered" || e.kind === "invalid"));
});

test("an account created by either client logs in with the other; recovery and passwd", async () => {
  const remote = new Remote(srv.url);
  const { account, recoveryCode } = await signup(remote, "bob", PASSWORD);
  await account.put("hello.txt", new TextEncoder().encode("bob's file"));
  const dir = tempDir("blind-cfg-");
  await blindOK(dir, ["--server", srv.url, "login", "--user", "bob"], env());
  const ls = await blindOK(dir, ["ls"], env());
  assert.match(ls, /hello\.txt/);

  // a second signup with the same name and password is refused
  await assert.rejects(signup(remote, "bob", PASSWORD), (e: unknown) => e instanceof BlindError && e.kind === "conflict");
  await assert.rejects(login(remote, "bob", "wrong password"), (e: unknown) => e instanceof BlindError && e.kind === "auth");

  // TypeScript changes the password; blind logs in with the new one
  const NEW = "a different long passphrase 7";
  await account.passwd(PASSWORD, NEW);
  await blindOK(tempDir("blind-cfg-"), ["--server", srv.url, "login", "--user", "bob"], env({ BLIND_PASSWORD: NEW }));
  const refused = await blind(tempDir("blind-cfg-"), ["--server", srv.url, "login", "--user", "bob"], env());
  assert.equal(refused.code, 3, "the old password no longer logs in (exit 3, auth)");

  // the recovery code of a TypeScript signup works in blind and in TypeScript
  const RECOVERED = "recovered passphrase for bob 9";
  const rdir = tempDir("blind-cfg-");
  await blindOK(rdir, ["--server", srv.url, "login", "--user", "bob", "--recover"], env({ BLIND_RECOVERY_CODE: recoveryCode, BLIND_NEW_PASSWORD: RECOVERED, BLIND_PASSWORD: RECOVERED }));
  const again = await loginRecovery(remote, recoveryCode.toLowerCase(), "bob", "and again from TS 10");
  assert.deepEqual((await again.list()).map((f) => f.name), ["hello.txt"]);

  // an account made by blind, its recovery code read from its output, logs in and recovers in TypeScript
  const cdir = tempDir("blind-cfg-");
  const out = await blindSignup(cdir, srv.url, "carol");
  const code = /[0-9A-Z]{4}(-[0-9A-Z]{4}){7}/.exec(out)?.[0];
  assert.ok(code, "blind signup printed a recovery code:\n" + out);
  const carol = await login(remote, "carol", PASSWORD);
  assert.deepEqual(await carol.list(), []);
  assert.ok(carol.safeUntil().getTime() > Date.now());
  const rec = await loginRecovery(remote, code, "carol", "carol's new passphrase 11");
  await rec.put("x", new Uint8Array([1, 2, 3]));
  await blindOK(tempDir("blind-cfg-"), ["--server", srv.url, "login", "--user", "carol"], env({ BLIND_PASSWORD: "carol's new passphrase 11" }));

  // a remembered session resumes without the password
  const st = rec.exportState();
  assert.doesNotMatch(st, /passphrase/);
  const resumed = await Account.resume(remote, st);
  assert.deepEqual((await resumed.list()).map((f) => f.name), ["x"]);
  const s = await resumed.status();
  assert.equal(s.files, 1);
  assert.equal(s.bytes, 3);
  // bad input is a rejected promise with the kind blind exits by
  await assert.rejects(resumed.get("nope"), (e: unknown) => e instanceof BlindError && e.kind === "not found" && e.exitCode === 4);
  await assert.rejects(resumed.put("../escape", new Uint8Array([1])), (e: unknown) => e instanceof BlindError && e.kind === "invalid" && e.exitCode === 2);
  await assert.rejects(resumed.mv("x", "a//b"), (e: unknown) => e instanceof BlindError && e.kind === "invalid");
  await assert.rejects(resumed.rm("nope"), (e: unknown) => e instanceof BlindError && e.kind === "not found");
  await assert.rejects(Account.resume(remote, "{}"), (e: unknown) => e instanceof BlindError && e.kind === "auth");
});

test("two sessions racing: the loser merges and both files survive", async () => {
  const remote = new Remote(srv.url);
  const { account: a } = await signup(remote, "racer", PASSWORD);
  const b = await login(new Remote(srv.url), "racer", PASSWORD);
  await a.put("one.txt", new TextEncoder().encode("1"));
  await b.put("two.txt", new TextEncoder().encode("2")); // b's head is stale: compare-and-swap fails, merge, retry
  const c = await login(remote, "racer", PASSWORD);
  assert.deepEqual((await c.list()).map((f) => f.name), ["one.txt", "two.txt"]);
  const dir = tempDir("blind-cfg-");
  await blindOK(dir, ["--server", srv.url, "login", "--user", "racer"], env());
  assert.match(await blindOK(dir, ["ls"], env()), /one\.txt[\s\S]*two\.txt/);
});

test("a tampering server is caught with a typed error and no output", async () => {
  const remote = new Remote(srv.url);
  const { account } = await signup(remote, "victim", PASSWORD);
  const data = randomBytes(200_000, 13);
  await account.put("t.bin", data);
  const proxy = await startProxy(srv.url);
  try {
    const acct = await Account.resume(new Remote(proxy.url), account.exportState());
    proxy.tamper = true;
    let received = 0;
    await assert.rejects(
      (async () => {
        const body = await acct.get("t.bin", { onProgress: (n) => (received = n) });
        await readAll(body);
      })(),
      (e: unknown) => e instanceof BlindError && e.kind === "tampered" && e.exitCode === 7,
    );
    assert.equal(received, 0, "nothing was given out");
    // the index itself, tampered, refuses the login
    await assert.rejects(login(new Remote(proxy.url), "victim", PASSWORD), (e: unknown) => e instanceof BlindError && e.kind === "tampered");
  } finally {
    await proxy.close();
  }
});

test("a server that charges Privacy Pass tokens works from TypeScript", async () => {
  const paid = await startServer({ blockSize: BS, issuer: true });
  try {
    const code = await invite(paid, 40);
    const wallet = new TokenWallet({ invite: code });
    const remote = new Remote(paid.url, { wallet });
    const { account } = await signup(remote, "payer", PASSWORD);
    const before = (await account.status()).tokensLeft;
    assert.ok(before !== undefined && before > 0, "tokens were fetched at signup");
    const data = randomBytes(100_000, 17);
    await account.put("paid.bin", data);
    const after = (await account.status()).tokensLeft!;
    assert.ok(after < before!, `tokens were spent (${before} → ${after})`);
    assert.deepEqual(await readAll(await account.get("paid.bin")), data);

    // without a wallet the server refuses writes with a quota error
    await assert.rejects(signup(new Remote(paid.url), "nopay", PASSWORD), (e: unknown) => e instanceof BlindError && e.kind === "quota");

    // blind, with an invite of its own, reads the file TypeScript paid for
    const dir = tempDir("blind-cfg-");
    const code2 = await invite(paid, 10);
    await blindOK(dir, ["--server", paid.url, "login", "--user", "payer", "--invite", code2], env());
    await blindOK(dir, ["get", "paid.bin", "-o", join(dir, "paid.out")], env());
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, "paid.out"))), data);

    // the session keeps the unspent tokens
    const st = JSON.parse(account.exportState());
    assert.ok(st.wallet.tokens.length === after);
  } finally {
    await paid.stop();
  }
});

test("an index of many leaves and dirs, updated by both clients, reads the same in both", async () => {
  // 1 KiB blocks: a leaf holds a few files, so the tree has many leaves, dirs and padding.
  const small = await startServer({ blockSize: 1024 });
  try {
    const remote = new Remote(small.url);
    const { account } = await signup(remote, "many", PASSWORD);
    const want = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const name = `dir${i % 7}/file-${String(i).padStart(3, "0")}.txt`;
      // a third inline, a third of one chunk, a third of about 13 chunks (entries longer than a block: leaves span blocks, dirs split)
      const content = i % 3 === 0 ? new TextEncoder().encode(`inline ${i}`) : i % 3 === 1 ? randomBytes(12_000, i) : new TextEncoder().encode(`a file bigger than thirty bytes, number ${i}`);
      await account.put(name, content);
      want.add(name);
    }
    const dir = tempDir("blind-cfg-");
    await blindOK(dir, ["--server", small.url, "login", "--user", "many"], env());
    const names = async () => {
      const out = await blindOK(dir, ["ls"], env());
      return new Set([...want].filter((n) => out.includes(n)));
    };
    assert.equal((await names()).size, want.size, "blind lists every file TypeScript put");

    // blind changes the middle of the index; TypeScript reads it and changes it again
    writeFileSync(join(dir, "new.txt"), "added by blind, longer than thirty bytes");
    await blindOK(dir, ["put", join(dir, "new.txt"), "--as", "dir3/file-0505.txt"], env());
    await blindOK(dir, ["rm", "dir1/file-001.txt"], env());
    want.add("dir3/file-0505.txt");
    want.delete("dir1/file-001.txt");
    const again = await login(remote, "many", PASSWORD);
    assert.deepEqual(new Set((await again.list()).map((f) => f.name)), want);
    for (let i = 0; i < 120; i += 10) {
      const from = `dir${i % 7}/file-${String(i).padStart(3, "0")}.txt`;
      if (!want.has(from)) continue;
      await again.mv(from, `moved/${i}.txt`);
      want.delete(from);
      want.add(`moved/${i}.txt`);
    }
    for (let i = 5; i < 120; i += 20) {
      const n = `dir${i % 7}/file-${String(i).padStart(3, "0")}.txt`;
      if (!want.has(n)) continue;
      await again.rm(n);
      want.delete(n);
    }
    const out = await blindOK(dir, ["ls"], env());
    for (const n of want) assert.ok(out.includes(n), `blind lists ${n}`);
    assert.equal(out.trim().split("\n").filter((l) => l.includes(".txt")).length, want.size, "and nothing else");
    await blindOK(dir, ["get", "dir3/file-0505.txt", "-o", join(dir, "n.out")], env());
    assert.equal(readFileSync(join(dir, "n.out"), "utf8"), "added by blind, longer than thirty bytes");
    assert.deepEqual(await readAll(await again.get("moved/10.txt")), randomBytes(12_000, 10));
    await blindOK(dir, ["get", "moved/20.txt", "-o", join(dir, "m.out")], env());
    assert.equal(readFileSync(join(dir, "m.out"), "utf8"), "a file bigger than thirty bytes, number 20");
  } finally {
    await small.stop();
  }
});
