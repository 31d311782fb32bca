// The plain-socket HTTP/1.1 client of Node (src/nodehttp.ts) against
// node:http servers and against raw sockets that answer in the ways a
// server or a proxy may: chunked, close-delimited, interim answers,
// a head split over many reads, a connection cut mid-body.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { netTransport } from "../src/nodehttp.js";
import { nodeHTTPTransport, nodeTransport } from "../src/transport.js";
import type { Transport } from "../src/transport.js";

function listen(s: http.Server | net.Server): Promise<string> {
  return new Promise((ok) => s.listen(0, "127.0.0.1", () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
}

const open = new Map<net.Server, Set<net.Socket>>();

function close(s: http.Server | net.Server): Promise<void> {
  if (s instanceof http.Server) s.closeAllConnections();
  for (const c of open.get(s) ?? []) c.destroy();
  return new Promise((ok) => s.close(() => ok()));
}

const transport = (url: string): Transport => netTransport(net, url, 5_000)!;

test("Node's transport for an http:// server is the plain-socket one, and node:http's for https://", () => {
  assert.ok(nodeTransport("http://127.0.0.1:1"));
  assert.ok(nodeTransport("https://127.0.0.1:1"));
  assert.equal(netTransport(net, "https://127.0.0.1:1", 1000), undefined);
});

test("sized, chunked and empty answers; bodies sent whole; connections reused", async () => {
  const sockets = new Set<net.Socket>();
  let requests = 0;
  const srv = http.createServer((req, res) => {
    sockets.add(req.socket);
    requests++;
    const parts: Buffer[] = [];
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      if (req.url === "/sized") {
        const b = Buffer.alloc(200_000, 7);
        res.writeHead(200, { "Content-Length": b.length, "X-Two": ["a", "b"] });
        res.end(b);
      } else if (req.url === "/chunked") {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.write('{"a":');
        setTimeout(() => res.end('"' + "x".repeat(100_000) + '"}'), 5);
      } else if (req.url === "/echo") {
        res.writeHead(201, { ETag: `"${req.headers["x-tag"]}"`, "Content-Length": body.length });
        res.end(body);
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  const url = await listen(srv);
  try {
    const t = transport(url);
    for (let round = 0; round < 3; round++) {
      const a = await t({ method: "GET", url: url + "/sized", headers: {} });
      assert.equal(a.status, 200);
      assert.equal(a.header("x-two"), "a, b");
      const b = await a.bytes();
      assert.equal(b.length, 200_000);
      assert.ok(b.every((x) => x === 7));

      const c = await t({ method: "GET", url: url + "/chunked", headers: {} });
      assert.equal(c.header("Content-Type"), "application/json");
      assert.equal(JSON.parse(await c.text()).a.length, 100_000);

      const body = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300_000).fill(9)];
      const e = await t({ method: "PUT", url: url + "/echo", headers: { "X-Tag": "t" + round }, body });
      assert.equal(e.status, 201);
      assert.equal(e.header("etag"), `"t${round}"`);
      const eb = await e.bytes();
      assert.equal(eb.length, 300_003);
      assert.deepEqual([...eb.subarray(0, 4)], [1, 2, 3, 9]);

      const n = await t({ method: "DELETE", url: url + "/none", headers: {} });
      assert.equal(n.status, 204);
      assert.equal((await n.bytes()).length, 0);
    }
    assert.equal(requests, 12);
    assert.equal(sockets.size, 1, "one request at a time goes over one kept-alive connection");

    // Concurrent requests open connections of their own, and each answer is its own.
    const many = await Promise.all(Array.from({ length: 8 }, () => t({ method: "GET", url: url + "/sized", headers: {} }).then((r) => r.bytes())));
    for (const b of many) assert.equal(b.length, 200_000);
    assert.ok(sockets.size >= 2 && sockets.size <= 8);
  } finally {
    await close(srv);
  }
});

test("a discarded body is read to its end and the connection goes on serving", async () => {
  const sockets = new Set<net.Socket>();
  const srv = http.createServer((req, res) => {
    sockets.add(req.socket);
    const b = Buffer.alloc(req.url === "/big" ? 1 << 20 : 10, 1);
    res.writeHead(req.url === "/big" ? 404 : 200, { "Content-Length": b.length });
    res.end(b);
  });
  const url = await listen(srv);
  try {
    const t = transport(url);
    const a = await t({ method: "GET", url: url + "/big", headers: {} });
    assert.equal(a.status, 404);
    await a.discard();
    await new Promise((r) => setTimeout(r, 50)); // the rest of the body comes meanwhile
    const b = await t({ method: "GET", url: url + "/small", headers: {} });
    assert.equal((await b.bytes()).length, 10);
    assert.equal(sockets.size, 1);
  } finally {
    await close(srv);
  }
});

/** A server that answers each request on a connection with the next of answers, written in pieces of step bytes. */
async function rawServer(answers: (string | Uint8Array)[], step: number, opts: { closeAfter?: boolean } = {}): Promise<{ url: string; srv: net.Server; conns: () => number }> {
  let conns = 0;
  let next = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    conns++;
    let buf = "";
    s.on("data", async (d) => {
      buf += d.toString("latin1");
      while (buf.includes("\r\n\r\n")) {
        buf = buf.slice(buf.indexOf("\r\n\r\n") + 4);
        const a = answers[next++ % answers.length]!;
        const bytes = typeof a === "string" ? Buffer.from(a, "latin1") : Buffer.from(a);
        for (let o = 0; o < bytes.length; o += step) {
          s.write(bytes.subarray(o, o + step));
          await new Promise((r) => setImmediate(r));
        }
        if (opts.closeAfter) s.end();
      }
    });
    s.on("error", () => {});
  });
  open.set(srv, socks);
  const url = await listen(srv);
  return { url, srv, conns: () => conns };
}

test("answers read byte by byte: interim answers, chunk extensions and trailers", async () => {
  const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
  const interim = "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  const { url, srv, conns } = await rawServer([chunked, interim], 1);
  try {
    const t = transport(url);
    for (let i = 0; i < 2; i++) {
      const a = await t({ method: "GET", url: url + "/a", headers: {} });
      assert.equal(a.header("x-a"), "1");
      assert.equal(await a.text(), "hello world");
      const b = await t({ method: "GET", url: url + "/b", headers: {} });
      assert.equal(b.status, 200);
      assert.equal(await b.text(), "abc");
    }
    assert.equal(conns(), 1);
  } finally {
    await close(srv);
  }
});

test("a close-delimited answer ends at the close, and the next request opens a new connection", async () => {
  const { url, srv, conns } = await rawServer(["HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"], 4, { closeAfter: true });
  try {
    const t = transport(url);
    for (let i = 0; i < 2; i++) {
      const a = await t({ method: "GET", url: url + "/", headers: {} });
      assert.equal(await a.text(), "all of it");
    }
    assert.equal(conns(), 2);
  } finally {
    await close(srv);
  }
});

test("a server that closes an idle connection costs nothing; Connection: close is honoured", async () => {
  const closing = await rawServer(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], 100, { closeAfter: true });
  const saying = await rawServer(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"], 100);
  try {
    for (const { url } of [closing, saying]) {
      const t = transport(url);
      for (let i = 0; i < 3; i++) {
        const a = await t({ method: "GET", url: url + "/", headers: {} });
        assert.equal(await a.text(), "ok");
        await new Promise((r) => setTimeout(r, 20)); // the server's close arrives
      }
    }
    assert.equal(closing.conns(), 3);
    assert.equal(saying.conns(), 3);
  } finally {
    await Promise.all([close(closing.srv), close(saying.srv)]);
  }
});

test("a connection cut mid-body fails the body; malformed answers fail the request", async () => {
  const cut = await rawServer(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"], 1000, { closeAfter: true });
  const bad = await rawServer(["HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"], 1000);
  const notHTTP = await rawServer(["SSH-2.0-OpenSSH\r\n\r\n"], 1000);
  const badChunk = await rawServer(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], 1000);
  try {
    const a = await transport(cut.url)({ method: "GET", url: cut.url + "/", headers: {} });
    await assert.rejects(a.bytes(), /closed before the whole answer/);
    await assert.rejects(transport(bad.url)({ method: "GET", url: bad.url + "/", headers: {} }), /Content-Length/);
    await assert.rejects(transport(notHTTP.url)({ method: "GET", url: notHTTP.url + "/", headers: {} }), /not HTTP/);
    const c = await transport(badChunk.url)({ method: "GET", url: badChunk.url + "/", headers: {} });
    await assert.rejects(c.bytes(), /chunk size/);
    await assert.rejects(transport(cut.url)({ method: "GET", url: cut.url + "/", headers: { "X-Bad": "a\r\nInjected: 1" } }), /not a valid header/);
    await assert.rejects(transport("http://127.0.0.1:1")({ method: "GET", url: "http://127.0.0.1:1/", headers: {} }), /ECONNREFUSED/);
  } finally {
    await Promise.all([close(cut.srv), close(bad.srv), close(notHTTP.srv), close(badChunk.srv)]);
  }
});

test("a recycled body reads a later answer of its size; views and other sizes are not taken", async () => {
  const srv = http.createServer((req, res) => {
    const n = req.url === "/other" ? 5000 : 8192;
    res.writeHead(200, { "Content-Length": n });
    res.end(Buffer.alloc(n, req.url === "/b" ? 2 : 1));
  });
  const url = await listen(srv);
  try {
    const t = transport(url);
    const get = async (p: string) => (await t({ method: "GET", url: url + p, headers: {} })).bytes();
    const a = await get("/a");
    t.recycle!(a);
    const b = await get("/b");
    assert.equal(b, a, "the recycled array is read into again");
    assert.ok(b.every((x) => x === 2));
    t.recycle!(b.subarray(1));
    const c = await get("/a");
    assert.notEqual(c.buffer, b.buffer, "a view is never handed out again");
    t.recycle!(c);
    const d = await get("/other");
    assert.equal(d.length, 5000);
    assert.notEqual(d.buffer, c.buffer);
  } finally {
    await close(srv);
  }
});

test("a streamed body comes piece by piece, bytes that came first included, and fails when cut", async () => {
  const body = Buffer.alloc(300_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Length": body.length });
    if (req.url === "/slow") {
      res.write(body.subarray(0, 1000));
      setTimeout(() => res.end(body.subarray(1000)), 20);
    } else res.end(body);
  });
  const url = await listen(srv);
  const cut = await rawServer(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"], 1000, { closeAfter: true });
  try {
    for (const t of [transport(url), nodeHTTPTransport(url)!]) {
      for (const [path, streamed] of [["/whole", false], ["/slow", false], ["/whole", true], ["/slow", true]] as const) {
        // streamed: the transport sets no array aside; the bytes that came with the head still reach the sink.
        const r = await t({ method: "GET", url: url + path, headers: {}, streamed });
        // The head and the start of the body often come in one read, before stream is called.
        await new Promise((ok) => setTimeout(ok, 5));
        const got: Buffer[] = [];
        await r.stream((p) => got.push(Buffer.from(p))); // a piece is the sink's only while it runs
        assert.ok(Buffer.concat(got).equals(body), `${path}: the streamed body is the body`);
      }
      // The connection serves on after a streamed body.
      assert.equal((await (await t({ method: "GET", url: url + "/whole", headers: {} })).bytes()).length, body.length);
    }
    const a = await transport(cut.url)({ method: "GET", url: cut.url + "/", headers: {} });
    let n = 0;
    await assert.rejects(
      a.stream((p) => (n += p.length)),
      /closed before the whole answer/,
    );
    assert.equal(n, "only this".length);
  } finally {
    await Promise.all([close(srv), close(cut.srv)]);
  }
});
