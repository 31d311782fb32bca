// The Service Worker that streams downloads to disk: the page hands it one
// end of a port, on which the client's worker sends the file's pieces
// (decrypted as they come; PortPiece in protocol.ts), and opens
// /_download/<id> in a hidden frame; the answer is a stream of them
// with Content-Disposition: attachment, so the browser writes it to the
// downloads folder piece by piece and no tab ever holds the whole file.
// It is registered for /_download/ only (main.ts), so that the client's
// requests to the API never pass through it.
import type { Download, PortCredit, PortPiece } from "./protocol.js";
declare const self: ServiceWorkerGlobalScope;

interface Pending {
  name: string;
  size: number;
  /** The content, once the client's worker has sent it to the port. */
  content: Promise<Download>;
}

const pending = new Map<string, Pending>();
const PREFIX = "/_download/";

self.addEventListener("install", () => {
  void self.skipWaiting();
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(self.clients.claim());
});

self.addEventListener("message", (ev) => {
  const m = ev.data as { type?: string; id?: string; name?: string; size?: number; port?: unknown; ack?: unknown };
  if (m.type === "cancel" && m.id) {
    pending.delete(m.id);
    return;
  }
  if (m.type !== "download" || !m.id || !(m.port instanceof MessagePort)) return;
  const content = fromPort(m.port);
  pending.set(m.id, { name: m.name ?? "download", size: m.size ?? 0, content });
  if (m.ack instanceof MessagePort) m.ack.postMessage("ready");
});

/**
 * The download the client's worker sends over port (PortPiece): it
 * resolves at its first message, with the size and a stream of the
 * pieces, and gives credit back as the stream hands them on.
 */
function fromPort(port: MessagePort): Promise<Download> {
  return new Promise<Download>((resolve) => {
    const queued: Uint8Array[] = [];
    let ended = false;
    let failed: Error | undefined;
    let wake: (() => void) | undefined;
    // One piece a pull: the browser pulls as it writes the file, and the
    // credit goes back as each piece leaves for it.
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(ctl) {
          while (queued.length === 0 && !ended && !failed) await new Promise<void>((r) => (wake = r));
          if (failed) throw failed;
          const p = queued.shift();
          if (p) {
            ctl.enqueue(p);
            port.postMessage({ credit: p.length } satisfies PortCredit);
          } else {
            ctl.close();
            port.close();
          }
        },
        cancel() {
          port.close();
        },
      },
      { highWaterMark: 0 },
    );
    port.onmessage = (e: MessageEvent<PortPiece>) => {
      const m = e.data;
      if ("head" in m) resolve({ body, ...(m.size !== undefined ? { size: m.size } : {}) });
      else if ("piece" in m) queued.push(m.piece);
      else if ("end" in m) ended = true;
      else failed = new Error(m.error);
      wake?.();
      wake = undefined;
    };
  });
}

/** filename* of RFC 6266 (UTF-8, percent-encoded), plus an ASCII fallback. */
function disposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const utf8 = encodeURIComponent(name).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(PREFIX)) return;
  const id = url.pathname.slice(PREFIX.length);
  const p = pending.get(id);
  pending.delete(id);
  if (!p) {
    ev.respondWith(new Response("this download is gone: start it again from the app", { status: 404, headers: { "Content-Type": "text/plain; charset=utf-8" } }));
    return;
  }
  ev.respondWith(
    p.content.then((c) => {
      const headers = new Headers({
        "Content-Type": "application/octet-stream",
        "Content-Disposition": disposition(p.name),
        "X-Content-Type-Options": "nosniff",
      });
      const size = c.size ?? p.size;
      if (size > 0) headers.set("Content-Length", String(size));
      return new Response(c.body, { headers });
    }),
  );
});
