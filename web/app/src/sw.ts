// The Service Worker that streams downloads to disk: the page hands it a
// file's ReadableStream (decrypted by the client's worker as it comes)
// and opens /_download/<id> in a hidden frame; the answer is that stream
// with Content-Disposition: attachment, so the browser writes it to the
// downloads folder piece by piece and no tab ever holds the whole file.
// Every other request passes through untouched.
export {};
declare const self: ServiceWorkerGlobalScope;

interface Pending {
  body: ReadableStream<Uint8Array>;
  name: string;
  size: number;
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
  const m = ev.data as { type?: string; id?: string } & Partial<Pending>;
  if (m.type !== "download" || !m.id || !(m.body instanceof ReadableStream)) return;
  pending.set(m.id, { body: m.body, name: m.name ?? "download", size: m.size ?? 0 });
  ev.ports[0]?.postMessage("ready");
});

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
  const headers = new Headers({
    "Content-Type": "application/octet-stream",
    "Content-Disposition": disposition(p.name),
    "X-Content-Type-Options": "nosniff",
  });
  if (p.size > 0) headers.set("Content-Length", String(p.size));
  ev.respondWith(new Response(p.body, { headers }));
});
