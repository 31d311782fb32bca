// A put commits its index while its last data batches still wait in the
// server's write pool, with a check of each of their blocks in the commit
// (as the Go client does): over a real blindstored, through the counting
// proxy of harness.ts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Account, readAll, Remote, signup } from "../src/index.js";
import { randomBytes, startProxy, startServer, type Server } from "./harness.js";

const BS = 16384;
const PASSWORD = "correct horse battery staple 42";
const servers: Server[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

// A file of several batches (write_batch blocks each) and an account
// that reaches the server through a counting proxy.
async function setup(poolWindow: string, user: string) {
  const srv = await startServer({ blockSize: BS, poolWindow });
  servers.push(srv);
  const { account } = await signup(new Remote(srv.url), user, PASSWORD);
  const proxy = await startProxy(srv.url);
  const a = await Account.resume(new Remote(proxy.url), account.exportState());
  const batch = (await a.remote.config()).limits.write_batch;
  const content = randomBytes(2 * batch * BS + 5 * BS, 7);
  proxy.reset();
  return { a, proxy, content };
}

test("a put commits its index beside its last batches, checking their blocks; the file reads back", async () => {
  const { a, proxy, content } = await setup("200ms", "beside");
  try {
    await a.put("f.bin", content);
    assert.equal(proxy.counts.commits, 1, "one commit");
    assert.ok(proxy.counts.checks > 0, "the commit checked the blocks still on their way");
    assert.deepEqual(await readAll(await a.get("f.bin")), content);
  } finally {
    await proxy.close();
  }
});

test("a commit that comes before the data it checks applies nothing, and goes again once the data is answered", async () => {
  const { a, proxy, content } = await setup("200ms", "held");
  try {
    proxy.holdWrites = true;
    await a.put("f.bin", content);
    assert.equal(proxy.counts.commits, 2, "the first commit failed its checks and a second one followed the data");
    assert.ok(proxy.counts.checks > 0);
    proxy.holdWrites = false;
    const fresh = await Account.resume(new Remote(proxy.url), a.exportState());
    assert.deepEqual(await readAll(await fresh.get("f.bin")), content);
    assert.equal((await fresh.list()).length, 1);
  } finally {
    await proxy.close();
  }
});

test("without a pool window a put waits for its data and its commit checks nothing", async () => {
  const { a, proxy, content } = await setup("0s", "nowindow");
  try {
    await a.put("f.bin", content);
    assert.equal(proxy.counts.checks, 0);
    assert.equal(proxy.counts.commits, 1);
    assert.deepEqual(await readAll(await a.get("f.bin")), content);
  } finally {
    await proxy.close();
  }
});
