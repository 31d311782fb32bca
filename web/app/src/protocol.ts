// The messages between the page (main.ts) and the Web Worker (worker.ts)
// that runs the client: the page never holds a key or does crypto; it asks
// the worker by name and gets a plain answer, a transferred stream, or an
// error with the client's kind.

export interface FileRow {
  name: string;
  size: number;
  modified: number; // ms since the epoch
}

export interface Overview {
  user: string;
  files: FileRow[];
  bytes: number;
  safeUntil: number;
  tokensLeft?: number;
  charges: boolean;
}

export interface Ops {
  config(): { charges: boolean };
  signup(user: string, password: string, invite: string, remember: boolean): { recoveryCode: string; session?: string };
  login(user: string, password: string, invite: string, remember: boolean): { session?: string };
  recover(code: string, user: string, newPassword: string, invite: string, remember: boolean): { session?: string };
  resume(session: string): { session: string };
  overview(): Overview;
  put(name: string, file: Blob): { session?: string };
  /** With to, the body goes there as a Download, not in the answer. */
  get(name: string, to?: MessagePort): { body?: ReadableStream<Uint8Array>; size: number };
  rm(name: string): { session?: string };
  mv(from: string, to: string): { session?: string };
  share(name: string): { capability: string };
  openShared(capability: string): { name: string; size: number };
  takeShared(to?: MessagePort): { body?: ReadableStream<Uint8Array> };
  logout(): Record<string, never>;
}

export type OpName = keyof Ops;

/**
 * A file's content on its way from the client's worker to the Service
 * Worker (sw.ts), over a port that the page gave each of them: the
 * chunks then pass between those two threads only, not through the page.
 */
export interface Download {
  body: ReadableStream<Uint8Array>;
  size?: number;
}

/**
 * How a download crosses the port to the Service Worker (portStream in
 * worker.ts, fromPort in sw.ts): its pieces by transfer, each a buffer of
 * its own, which a transferred ReadableStream would copy instead (a
 * structured clone per piece, in a 64 MiB download more than a second of
 * the worker's CPU with the copies that gathered pieces for it). The
 * Service Worker grants credit in bytes as it hands pieces on, so that at
 * most PORT_WINDOW bytes are on their way.
 */
export type PortPiece = { head: true; size?: number } | { piece: Uint8Array } | { end: true } | { error: string };
export type PortCredit = { credit: number };
export const PORT_WINDOW = 8 << 20;

export interface Request<K extends OpName = OpName> {
  id: number;
  op: K;
  args: Parameters<Ops[K]>;
}

export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; kind: string; message: string }
  | { id: number; progress: { sent: number; total?: number } };

// The messages between the client's worker and the workers of its pool
// are the client package's (src/blockjobs.ts).
export type { BlockJob, BlockReply } from "../../src/blockjobs.js";
