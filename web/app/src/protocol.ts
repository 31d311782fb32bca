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
  get(name: string): { body: ReadableStream<Uint8Array>; size: number };
  rm(name: string): { session?: string };
  mv(from: string, to: string): { session?: string };
  share(name: string): { capability: string };
  openShared(capability: string): { name: string; size: number };
  takeShared(): { body: ReadableStream<Uint8Array> };
  logout(): Record<string, never>;
}

export type OpName = keyof Ops;

export interface Request<K extends OpName = OpName> {
  id: number;
  op: K;
  args: Parameters<Ops[K]>;
}

export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; kind: string; message: string }
  | { id: number; progress: { sent: number; total?: number } };
