// The page: plain DOM, no framework. Everything that touches a key runs in
// the Web Worker (worker.ts); the page asks it by message, shows the
// answers, and saves downloads through the Service Worker (sw.ts) so that
// a large file streams to disk instead of being held in the tab.
import type { OpName, Ops, Overview, Reply, Request } from "./protocol.js";

const SESSION_KEY = "blindstore.session";

// --- the worker --------------------------------------------------------

let worker = new Worker("/worker.js");
let nextID = 1;
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; progress?: (sent: number, total?: number) => void }>();

class AppError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

function listen(w: Worker): void {
  w.onmessage = (ev: MessageEvent<Reply>) => {
    const r = ev.data;
    const p = waiting.get(r.id);
    if (!p) return;
    if ("progress" in r) {
      p.progress?.(r.progress.sent, r.progress.total);
      return;
    }
    waiting.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(new AppError(r.kind, r.message));
  };
  w.onerror = (ev) => {
    ev.preventDefault();
    for (const p of waiting.values()) p.reject(new AppError("other", "the app's worker failed: reload the page"));
    waiting.clear();
  };
}
listen(worker);

function call<K extends OpName>(op: K, args: Parameters<Ops[K]>, progress?: (sent: number, total?: number) => void, transfer: Transferable[] = []): Promise<ReturnType<Ops[K]>> {
  const id = nextID++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(progress ? { progress } : {}) });
    const req: Request<K> = { id, op, args };
    worker.postMessage(req, transfer);
  });
}

/** A fresh worker: nothing of the last account stays in memory. */
function restartWorker(): void {
  worker.terminate();
  for (const p of waiting.values()) p.reject(new AppError("aborted", "logged out"));
  waiting.clear();
  worker = new Worker("/worker.js");
  listen(worker);
}

// --- the page's parts --------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

const sections = ["auth", "recovery", "files", "shared"] as const;
function show(which: (typeof sections)[number]): void {
  for (const s of sections) $(s).hidden = s !== which;
}

function say(text: string, error = false): void {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("error", error);
  m.hidden = text === "";
}

function fail(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  say(msg.charAt(0).toUpperCase() + msg.slice(1), true);
}

let busyCount = 0;
async function busy<T>(f: () => Promise<T>): Promise<T> {
  busyCount++;
  $("busy").hidden = false;
  try {
    return await f();
  } finally {
    if (--busyCount === 0) $("busy").hidden = true;
  }
}

function keepSession(s: string | undefined): void {
  if (s) localStorage.setItem(SESSION_KEY, s);
}

function formatSize(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} ${n === 1 ? "byte" : "bytes"}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function formatDate(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// --- saving a download -------------------------------------------------

// The Service Worker's scope is /_download/ only: it controls the hidden
// frames that save downloads and nothing else. A worker in control of the
// page would also sit in the path of every request the client makes (the
// client's worker belongs to the page), and Chromium then runs each block
// request through it, which cost more than the request itself.
const DOWNLOADS = "/_download/";
let downloads: ServiceWorkerRegistration | undefined;

/**
 * Saves a file to the user's downloads; open asks the client's worker for
 * its content, into a port or, without one, in its answer. With the
 * Service Worker active (every Chromium, Firefox and Safari on https or
 * localhost), the worker streams the content to it through a port, and a
 * hidden frame in its scope opens it as an attachment: the file flows to
 * disk as it is decrypted, and never through this page. Without one (a
 * private window that refuses Service Workers, say), the last resort is a
 * Blob, which holds the file.
 */
async function save(name: string, size: number | undefined, open: (to?: MessagePort) => Promise<ReadableStream<Uint8Array> | undefined>): Promise<void> {
  const sw = downloads?.active;
  if (sw) {
    const id = crypto.randomUUID();
    const data = new MessageChannel();
    const ack = new MessageChannel();
    const ready = new Promise<void>((resolve) => (ack.port1.onmessage = () => resolve()));
    sw.postMessage({ type: "download", id, name, ...(size !== undefined ? { size } : {}), port: data.port1, ack: ack.port2 }, [data.port1, ack.port2]);
    await ready;
    try {
      await open(data.port2);
    } catch (e) {
      sw.postMessage({ type: "cancel", id });
      throw e;
    }
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.src = DOWNLOADS + id;
    document.body.append(frame);
    // The download outlives the frame once it has started.
    setTimeout(() => frame.remove(), 60_000);
    return;
  }
  const body = await open();
  const blob = await new Response(body).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Resolves once reg has an active worker, or after ms. */
function activated(reg: ServiceWorkerRegistration, ms: number): Promise<void> {
  if (reg.active) return Promise.resolve();
  const sw = reg.installing ?? reg.waiting;
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    sw?.addEventListener("statechange", () => {
      if (sw.state === "activated" || sw.state === "redundant") {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

async function startServiceWorker(): Promise<void> {
  if (!("serviceWorker" in navigator)) return;
  try {
    // Earlier versions of the app registered it for the whole origin.
    for (const r of await navigator.serviceWorker.getRegistrations()) {
      if (new URL(r.scope).pathname !== DOWNLOADS) await r.unregister();
    }
    downloads = await navigator.serviceWorker.register("/sw.js", { scope: DOWNLOADS });
    await activated(downloads, 3000);
  } catch {
    // Downloads fall back to a Blob.
  }
}

// --- the file list -----------------------------------------------------

async function refresh(): Promise<void> {
  const o: Overview = await call("overview", []);
  $("who").textContent = o.user;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("usage").textContent = `${o.files.length} ${o.files.length === 1 ? "file" : "files"}, ${formatSize(o.bytes)}`;
  const safe = $("safe-until");
  safe.textContent = formatDate(o.safeUntil);
  safe.setAttribute("datetime", new Date(o.safeUntil).toISOString());
  const tokens = $("tokens");
  tokens.hidden = o.tokensLeft === undefined;
  tokens.textContent = o.tokensLeft === undefined ? "" : ` · ${o.tokensLeft} ${o.tokensLeft === 1 ? "token" : "tokens"} left`;
  const tbody = $("list").querySelector("tbody")!;
  tbody.replaceChildren(...o.files.map(row));
  $("empty").hidden = o.files.length > 0;
  show("files");
}

function button(label: string, action: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset["action"] = action;
  return b;
}

function row(f: Overview["files"][number]): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset["name"] = f.name;
  tr.dataset["size"] = String(f.size);
  const name = document.createElement("td");
  name.className = "name";
  name.textContent = f.name;
  const size = document.createElement("td");
  size.className = "num";
  size.textContent = formatSize(f.size);
  size.title = `${f.size} bytes`;
  const mod = document.createElement("td");
  mod.textContent = formatDate(f.modified);
  const act = document.createElement("td");
  act.className = "actions";
  act.append(button("Download", "download"), button("Share", "share"), button("Rename", "rename"), button("Delete", "delete"));
  tr.append(name, size, mod, act);
  return tr;
}

async function onRowAction(action: string, name: string, b: HTMLButtonElement): Promise<void> {
  switch (action) {
    case "download": {
      await save(name, undefined, async (to) => (await call("get", to ? [name, to] : [name], undefined, to ? [to] : [])).body);
      return;
    }
    case "share": {
      const { capability } = await call("share", [name]);
      // The capability rides in the fragment, which browsers never send.
      const link = `${location.origin}/#cap=${encodeURIComponent(capability)}`;
      $("share-name").textContent = name;
      $<HTMLInputElement>("share-link").value = link;
      $("share-box").hidden = false;
      return;
    }
    case "rename": {
      const d = $<HTMLDialogElement>("rename");
      const input = $<HTMLFormElement>("rename-form").elements.namedItem("to") as HTMLInputElement;
      input.value = name;
      d.dataset["from"] = name;
      d.showModal();
      input.select();
      return;
    }
    case "delete": {
      // A second click within a few seconds confirms.
      if (b.dataset["armed"] !== "1") {
        b.dataset["armed"] = "1";
        b.textContent = "Really delete?";
        setTimeout(() => {
          b.dataset["armed"] = "";
          b.textContent = "Delete";
        }, 4000);
        return;
      }
      keepSession((await call("rm", [name])).session);
      say(`Deleted ${name}.`);
      await refresh();
      return;
    }
  }
}

// --- uploads -----------------------------------------------------------

let uploadQueue = Promise.resolve();

function upload(files: FileList | File[]): void {
  for (const file of Array.from(files)) {
    const li = document.createElement("li");
    li.dataset["name"] = file.name;
    const label = document.createElement("span");
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "waiting";
    li.append(label, bar, state);
    $("uploads").append(li);
    // One at a time: the account commits each file in turn anyway, and the
    // bars then fill in order.
    uploadQueue = uploadQueue.then(async () => {
      state.textContent = "0%";
      try {
        const r = await call("put", [file.name, file], (sent, total) => {
          const t = total ?? file.size;
          bar.max = Math.max(t, 1);
          bar.value = sent;
          state.textContent = t > 0 ? `${Math.floor((100 * sent) / t)}%` : "";
        });
        keepSession(r.session);
        bar.value = bar.max;
        state.textContent = "done";
        li.dataset["done"] = "1";
        await refresh();
        setTimeout(() => li.remove(), 5000);
      } catch (e) {
        state.textContent = "failed";
        fail(e);
      }
    });
  }
}

// --- start -------------------------------------------------------------

function formValues(f: HTMLFormElement): { get(n: string): string; checked(n: string): boolean } {
  return {
    get: (n) => ((f.elements.namedItem(n) as HTMLInputElement | null)?.value ?? "").trim(),
    checked: (n) => (f.elements.namedItem(n) as HTMLInputElement | null)?.checked ?? false,
  };
}

function passwordOf(f: HTMLFormElement): string {
  // Passwords are not trimmed: spaces at the ends are part of them.
  return (f.elements.namedItem("password") as HTMLInputElement).value;
}

async function showAuth(): Promise<void> {
  $("who").hidden = true;
  $("logout").hidden = true;
  show("auth");
  try {
    const { charges } = await call("config", []);
    for (const el of document.querySelectorAll<HTMLElement>(".invite")) el.hidden = !charges;
  } catch (e) {
    fail(e);
  }
}

async function openShared(cap: string): Promise<void> {
  show("shared");
  $("who").hidden = true;
  $("logout").hidden = true;
  const { name, size } = await busy(() => call("openShared", [cap]));
  $("shared-name").textContent = name;
  $("shared-size").textContent = `(${formatSize(size)})`;
  const get = $<HTMLButtonElement>("shared-get");
  get.disabled = false;
  get.onclick = () =>
    void busy(async () => {
      get.disabled = true;
      await save(name, size, async (to) => (await call("takeShared", to ? [to] : [], undefined, to ? [to] : [])).body);
      say(`Downloading ${name}.`);
    }).catch(fail);
}

async function start(): Promise<void> {
  say("");
  const m = /^#cap=(.+)$/.exec(location.hash);
  if (m) {
    await openShared(decodeURIComponent(m[1]!));
    return;
  }
  const s = localStorage.getItem(SESSION_KEY);
  if (s) {
    try {
      keepSession((await busy(() => call("resume", [s]))).session);
      await refresh();
      return;
    } catch (e) {
      if (e instanceof AppError && (e.kind === "auth" || e.kind === "tampered")) localStorage.removeItem(SESSION_KEY);
      fail(e);
    }
  }
  await showAuth();
}

function wire(): void {
  $<HTMLFormElement>("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target as HTMLFormElement;
    const v = formValues(f);
    const mode = ((ev as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? "login";
    const remember = v.checked("remember");
    void busy(async () => {
      say("");
      if (mode === "signup") {
        const r = await call("signup", [v.get("user"), passwordOf(f), v.get("invite"), remember]);
        keepSession(r.session);
        $("recovery-code").textContent = r.recoveryCode;
        show("recovery");
      } else {
        keepSession((await call("login", [v.get("user"), passwordOf(f), v.get("invite"), remember])).session);
        await refresh();
      }
      f.reset();
    }).catch(fail);
  });
  $<HTMLFormElement>("recover-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target as HTMLFormElement;
    const v = formValues(f);
    void busy(async () => {
      keepSession((await call("recover", [v.get("code"), v.get("user"), passwordOf(f), v.get("invite"), v.checked("remember")])).session);
      f.reset();
      say("The new password is set.");
      await refresh();
    }).catch(fail);
  });
  $("recovery-done").addEventListener("click", () => {
    $("recovery-code").textContent = "";
    void busy(refresh).catch(fail);
  });
  $("logout").addEventListener("click", () => {
    localStorage.removeItem(SESSION_KEY);
    restartWorker();
    $("list").querySelector("tbody")!.replaceChildren();
    $("uploads").replaceChildren();
    $("share-box").hidden = true;
    say("Logged out.");
    void showAuth();
  });
  $("list").addEventListener("click", (ev) => {
    const b = (ev.target as HTMLElement).closest("button");
    const tr = b?.closest("tr");
    if (!b || !tr?.dataset["name"]) return;
    void busy(() => onRowAction(b.dataset["action"] ?? "", tr.dataset["name"]!, b)).catch(fail);
  });
  $<HTMLFormElement>("rename-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = $<HTMLDialogElement>("rename");
    const from = d.dataset["from"] ?? "";
    const to = formValues(ev.target as HTMLFormElement).get("to");
    d.close();
    if (!to || to === from) return;
    void busy(async () => {
      keepSession((await call("mv", [from, to])).session);
      say(`Renamed ${from} to ${to}.`);
      await refresh();
    }).catch(fail);
  });
  $("rename-cancel").addEventListener("click", () => $<HTMLDialogElement>("rename").close());
  $("copy").addEventListener("click", () => {
    const link = $<HTMLInputElement>("share-link");
    link.select();
    void navigator.clipboard?.writeText(link.value).then(() => say("Link copied."), () => say("Select the link and copy it."));
  });
  const pick = $<HTMLInputElement>("pick");
  pick.addEventListener("change", () => {
    if (pick.files) upload(pick.files);
    pick.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const files = ev.dataTransfer?.files;
    if (files?.length) upload(files);
  });
  window.addEventListener("hashchange", () => void start().catch(fail));
}

wire();
void startServiceWorker();
void start().catch(fail);
