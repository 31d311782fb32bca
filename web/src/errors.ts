// Typed errors that mirror the kinds of wire/errors.go, so that an app can
// react to "wrong password" (auth), "tampered" or "quota" as the Go client
// and the blind CLI (whose exit codes follow the kind) do.

/** The kinds of wire/errors.go, by the name a client reports ("kind" in blind --json). */
export type Kind =
  | "other"
  | "invalid"
  | "forbidden"
  | "not found"
  | "method not allowed"
  | "precondition failed"
  | "too large"
  | "unsupported media type"
  | "headers too large"
  | "rate limited"
  | "unavailable"
  | "full"
  | "timeout"
  | "unauthorized"
  | "aborted"
  | "auth"
  | "conflict"
  | "network"
  | "tampered"
  | "local i/o"
  | "quota";

/** The exit code the blind CLI uses for each kind (wire.Kind.ExitCode). */
export const exitCodes: Record<Kind, number> = {
  other: 1,
  invalid: 2,
  forbidden: 3,
  "not found": 4,
  "method not allowed": 1,
  "precondition failed": 5,
  "too large": 1,
  "unsupported media type": 1,
  "headers too large": 1,
  "rate limited": 6,
  unavailable: 6,
  full: 6,
  timeout: 6,
  unauthorized: 9,
  aborted: 5,
  auth: 3,
  conflict: 5,
  network: 6,
  tampered: 7,
  "local i/o": 8,
  quota: 9,
};

export class BlindError extends Error {
  readonly kind: Kind;
  /** For a lost compare-and-swap: the block's current ETag, when the server said. */
  readonly precondition?: { current?: Uint8Array };
  constructor(kind: Kind, message: string, opts?: { cause?: unknown; precondition?: { current?: Uint8Array } }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "BlindError";
    this.kind = kind;
    if (opts?.precondition) this.precondition = opts.precondition;
  }
  get exitCode(): number {
    return exitCodes[this.kind];
  }
}

/** The kind of any error: a BlindError's own, "other" for the rest. */
export function kindOf(err: unknown): Kind {
  return err instanceof BlindError ? err.kind : "other";
}

/** Wraps err with context, keeping its kind when it has one. */
export function wrap(kind: Kind, msg: string, err: unknown): BlindError {
  const k = kindOf(err);
  const inner = err instanceof Error ? err.message : String(err);
  return new BlindError(k !== "other" ? k : kind, msg + ": " + inner, {
    cause: err,
    ...(err instanceof BlindError && err.precondition ? { precondition: err.precondition } : {}),
  });
}

export function tampered(msg: string, cause?: unknown): BlindError {
  return new BlindError("tampered", msg, cause === undefined ? undefined : { cause });
}

/**
 * A commit that checked blocks whose writes were still on their way found
 * one missing (or the server cannot check): nothing of it applied, and the
 * caller waits for those writes and commits again (client.errUnacked).
 */
export class UnackedError extends BlindError {
  constructor() {
    super("conflict", "blocks the commit refers to are not all written yet");
  }
}

/** Whether err is an UnackedError, or wraps one. */
export function isUnacked(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) if (e instanceof UnackedError) return true;
  return false;
}
