// The TypeScript client in Node, for cmd/blindbench's web row: put or get one
// file with a session made by `login`, the way `blind put` and `blind get`
// use theirs. Runs the built package (npm run build), not the sources.
//
//   node bench/putget.mjs login URL USER SESSION   (password in BLIND_PASSWORD)
//   node bench/putget.mjs put   SESSION NAME FILE
//   node bench/putget.mjs get   SESSION NAME FILE
import { readFile, writeFile, open } from "node:fs/promises";
import { Remote, login, Account } from "../dist/index.js";

const [cmd, ...args] = process.argv.slice(2);

async function resume(path) {
  const state = await readFile(path, "utf8");
  return Account.resume(new Remote(JSON.parse(state).server), state);
}

// The file's content as the client's Source takes it: one 1 MiB buffer,
// read into again for each piece (the client uses up a piece before it
// asks for the next). A Blob of the file (fs.openAsBlob) does the same
// job for about 0.25 s more CPU per 64 MiB: Node's file Blob reads in
// 64 KiB pieces, each fresh memory.
async function* fileContent(path) {
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

switch (cmd) {
  case "login": {
    const [url, user, session] = args;
    const a = await login(new Remote(url), user, process.env.BLIND_PASSWORD ?? "");
    await writeFile(session, a.exportState(), { mode: 0o600 });
    break;
  }
  case "put": {
    const [session, name, file] = args;
    const a = await resume(session);
    await a.put(name, fileContent(file));
    break;
  }
  case "get": {
    const [session, name, file] = args;
    const a = await resume(session);
    const fh = await open(file, "w", 0o600);
    try {
      // One write in flight; the pieces that come meanwhile go out together
      // in the next writev (a write per 64 KiB piece costs a thread-pool
      // round trip each).
      let held = [];
      let inflight; // the write under way
      let failed;
      const start = () => {
        const out = held;
        held = [];
        inflight = fh.writev(out).then(
          () => (inflight = undefined),
          (e) => ((failed = e), (inflight = undefined)),
        );
      };
      for await (const piece of await a.get(name)) {
        if (failed) throw failed;
        held.push(piece);
        if (held.length >= 64 && inflight) await inflight;
        if (!inflight) start();
      }
      if (inflight) await inflight;
      if (held.length > 0) start();
      if (inflight) await inflight;
      if (failed) throw failed;
    } finally {
      await fh.close();
    }
    break;
  }
  default:
    console.error("usage: putget.mjs login URL USER SESSION | put SESSION NAME FILE | get SESSION NAME FILE");
    process.exit(2);
}
