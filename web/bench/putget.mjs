// The TypeScript client in Node, for cmd/blindbench's web row: put or get one
// file with a session made by `login`, the way `blind put` and `blind get`
// use theirs. Runs the built package (npm run build), not the sources.
//
//   node bench/putget.mjs login URL USER SESSION   (password in BLIND_PASSWORD)
//   node bench/putget.mjs put   SESSION NAME FILE
//   node bench/putget.mjs get   SESSION NAME FILE
import { openAsBlob } from "node:fs";
import { readFile, writeFile, open } from "node:fs/promises";
import { Remote, login, Account } from "../dist/index.js";

const [cmd, ...args] = process.argv.slice(2);

async function resume(path) {
  const state = await readFile(path, "utf8");
  return Account.resume(new Remote(JSON.parse(state).server), state);
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
    await a.put(name, await openAsBlob(file));
    break;
  }
  case "get": {
    const [session, name, file] = args;
    const a = await resume(session);
    const fh = await open(file, "w", 0o600);
    try {
      for await (const piece of await a.get(name)) await fh.write(piece);
    } finally {
      await fh.close();
    }
    break;
  }
  default:
    console.error("usage: putget.mjs login URL USER SESSION | put SESSION NAME FILE | get SESSION NAME FILE");
    process.exit(2);
}
