// The token wallet of docs/spec.md §14 for servers that charge: Privacy Pass
// type 0x0002 tokens (RFC 9577/9578, blind RSA 2048, SHA-384, PSS with a
// 48-byte salt, RFC 9474 RSABSSA-SHA384-PSS-Deterministic) fetched from the
// issuer the server names, kept in memory (and in exportState), and spent
// one per charged request, never twice. The same checks as client/tokens.go
// run before fetching: the challenge names this issuer and server, and the
// issuer's key is one the server publishes.
import { b64url, concat, equal, Reader, toUTF8, unb64url, Writer } from "./bytes.js";
import { random, sha256 } from "./crypto.js";
import { BlindError } from "./errors.js";
import type { Remote, ServerConfig, TokenConfig } from "./remote.js";

const WALLET_FORMAT = "blindstore-tokens-v1";
const TOKEN_TYPE = 0x0002;
const NK = 256;
const MAX_PUBLISHED_KEYS = 4;
const ISSUANCE_PARALLEL = 4;
const DIRECTORY_PATH = "/.well-known/private-token-issuer-directory";
const ALLOTMENT_PATH = "/v1/allotment";

interface WalletToken {
  challenge: string; // base64url (padded) of the TokenChallenge
  key_id: string;
  token: string; // base64url (padded) Token
}

export interface WalletState {
  format: string;
  issuer?: string;
  invite?: string;
  fetched_key?: string;
  next_allotment_at?: number;
  tokens: WalletToken[];
}

function normalizeInvite(code: string): string {
  return code.trim().replace(/[- ]/g, "").toLowerCase();
}

function hostOf(u: string): string {
  try {
    return new URL(u).host.toLowerCase();
  } catch {
    return "";
  }
}

function decodeB64Any(s: string): Uint8Array | undefined {
  return unb64url(s);
}

/** Reads a DER length at r and returns it. */
function derLen(r: Reader): number {
  const b = r.byte();
  if (b < 0x80) return b;
  let n = 0;
  for (let i = 0; i < (b & 0x7f); i++) n = n * 256 + r.byte();
  return n;
}

function derHeader(tag: number, len: number): Uint8Array {
  const w = new Writer().byte(tag);
  if (len < 0x80) return w.byte(len).done();
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  w.byte(0x80 | bytes.length);
  for (const x of bytes) w.byte(x);
  return w.done();
}

/**
 * The token key as WebCrypto imports it: the issuer's SPKI names
 * id-RSASSA-PSS with its parameters, which WebCrypto does not take, so the
 * same RSA key is wrapped as rsaEncryption (the PSS parameters are fixed by
 * the token type and given to the blind RSA suite instead).
 */
async function importTokenKey(spki: Uint8Array): Promise<CryptoKey> {
  const r = new Reader(spki);
  if (r.byte() !== 0x30) throw new Error("not a SEQUENCE");
  derLen(r);
  if (r.byte() !== 0x30) throw new Error("no algorithm");
  r.bytes(derLen(r)); // the algorithm identifier
  if (r.byte() !== 0x03) throw new Error("no BIT STRING");
  const bits = r.bytes(derLen(r)); // unused-bits byte ‖ PKCS#1 RSAPublicKey
  const alg = Uint8Array.from([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
  const bitString = concat(derHeader(0x03, bits.length), bits);
  const body = concat(alg, bitString);
  const converted = concat(derHeader(0x30, body.length), body);
  return globalThis.crypto.subtle.importKey("spki", converted as Uint8Array<ArrayBuffer>, { name: "RSA-PSS", hash: "SHA-384" }, true, ["verify"]);
}

interface Challenge {
  tokenType: number;
  issuerName: string;
  redemptionContext: Uint8Array;
  originInfo: string;
}

function parseChallenge(raw: Uint8Array): Challenge {
  const r = new Reader(raw);
  const tokenType = r.u16();
  const issuer = r.bytes(r.u16());
  const ctx = r.bytes(r.byte());
  const origin = r.bytes(r.u16());
  if (r.left !== 0 || issuer.length === 0 || (ctx.length !== 0 && ctx.length !== 32)) throw new Error("malformed TokenChallenge");
  const dec = new TextDecoder();
  return { tokenType, issuerName: dec.decode(issuer), redemptionContext: ctx, originInfo: dec.decode(origin) };
}

/**
 * Holds the invite and the unspent tokens. Give it to a Remote
 * (new Remote(url, { wallet })) for a server whose /v1/config has tokens.
 */
export class TokenWallet {
  private st: WalletState;
  private readonly fetchFn: typeof fetch;
  private refilling: Promise<number> | undefined;

  constructor(opts?: { invite?: string; state?: WalletState; fetch?: typeof fetch }) {
    this.fetchFn = opts?.fetch ?? ((i, init) => globalThis.fetch(i, init));
    this.st = opts?.state ? structuredClone(opts.state) : { format: WALLET_FORMAT, tokens: [] };
    if (opts?.invite) this.setInvite(opts.invite);
  }

  setInvite(code: string): void {
    const c = normalizeInvite(code);
    if (!c) throw new BlindError("invalid", "the invite code is empty");
    if (this.st.invite !== c) {
      this.st.invite = c;
      delete this.st.issuer;
      delete this.st.fetched_key;
      delete this.st.next_allotment_at;
    }
  }

  export(): WalletState {
    return structuredClone(this.st);
  }

  /** @internal */
  restore(state: unknown): void {
    const s = state as WalletState;
    if (s && s.format === WALLET_FORMAT && Array.isArray(s.tokens)) this.st = structuredClone(s);
  }

  private usable(t: TokenConfig): WalletToken[] {
    const accepted = new Map(t.token_keys.filter((k) => k.accepted).map((k) => [k.token_key_id, k.not_before] as const));
    return this.st.tokens
      .filter((k) => k.challenge === t.challenge || b64url(decodeB64Any(k.challenge) ?? new Uint8Array()) === b64url(decodeB64Any(t.challenge) ?? new Uint8Array(1)))
      .filter((k) => accepted.has(k.key_id))
      .sort((a, b) => accepted.get(a.key_id)! - accepted.get(b.key_id)!);
  }

  /** Tokens usable at the server now. */
  left(cfg: ServerConfig): number {
    return cfg.tokens ? this.usable(cfg.tokens).length : 0;
  }

  /** An Authorization header value with a token that leaves the wallet now. */
  async token(remote: Remote, cfg: ServerConfig): Promise<string> {
    const t = cfg.tokens!;
    for (let attempt = 0; ; attempt++) {
      const u = this.usable(t);
      if (u.length > 0) {
        const tok = u[0]!;
        const known = new Set(t.token_keys.map((k) => k.token_key_id));
        // Spent tokens leave before the request goes; tokens of keys the server dropped go too.
        this.st.tokens = this.st.tokens.filter((k) => k !== tok && known.has(k.key_id));
        return `PrivateToken token="${tok.token}"`;
      }
      if (attempt === 0) {
        const n = await this.refill(remote, cfg);
        if (n > 0) continue;
      }
      let msg = "out of tokens: this invite's allotment for the period is used up";
      if (this.st.next_allotment_at) msg += "; the next one comes " + new Date(this.st.next_allotment_at * 1000).toUTCString();
      throw new BlindError("quota", msg);
    }
  }

  /**
   * At signup and login: fetch the period's allotment if it was not
   * fetched under the newest key. As blind does, a hostile issuer (tampered)
   * or an unknown invite (auth) fails; anything else leaves the tokens
   * held, and a write that finds none says why.
   */
  async refillAtLogin(remote: Remote): Promise<void> {
    const cfg = await remote.config();
    if (!cfg.tokens || !this.st.invite) return;
    try {
      await this.refill(remote, cfg);
    } catch (e) {
      if (e instanceof BlindError && (e.kind === "tampered" || e.kind === "auth")) throw e;
    }
  }

  private newest(t: TokenConfig): string {
    let best = -1;
    let id = "";
    for (const k of t.token_keys) {
      if (k.accepted && k.not_before > best) {
        best = k.not_before;
        id = k.token_key_id;
      }
    }
    return id;
  }

  /** Fetches the whole allotment the issuer grants now (client.Wallet.Refill). */
  refill(remote: Remote, cfg: ServerConfig): Promise<number> {
    this.refilling ??= this.doRefill(remote, cfg).finally(() => {
      this.refilling = undefined;
    });
    return this.refilling;
  }

  private async issuerFetch(url: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", "Bearer " + normalizeInvite(this.st.invite ?? ""));
    let resp: Response;
    try {
      resp = await this.fetchFn(url, { ...init, headers });
    } catch (e) {
      throw new BlindError("network", "fetching tokens from the issuer: cannot reach it", { cause: e });
    }
    if (resp.status === 200) return resp;
    let code = "";
    try {
      code = ((await resp.json()) as { code?: string }).code ?? "";
    } catch {
      /* no body */
    }
    if (resp.status === 401) throw new BlindError("auth", "the token issuer does not know this invite code");
    if (resp.status === 429 && code === "allotment_used") throw new BlindError("quota", "this invite's tokens for the period are all fetched");
    throw new BlindError("network", `fetching tokens from the issuer: ${resp.status} (${code})`);
  }

  private async doRefill(remote: Remote, cfg: ServerConfig): Promise<number> {
    const t = cfg.tokens;
    if (!t) return 0;
    if (!this.st.invite) throw new BlindError("quota", "this server charges for writes with Privacy Pass tokens and none are held: sign up or log in with an invite code to fetch them");
    if (this.st.fetched_key && this.st.fetched_key === this.newest(t)) return 0;
    const challenge = this.checkChallenge(remote.url, t);
    if (this.st.issuer && this.st.issuer !== t.issuer) {
      throw new BlindError("quota", `the invite kept is for the issuer ${this.st.issuer}, and this server takes tokens of ${t.issuer}: use an invite of that issuer`);
    }
    const base = new URL(t.issuer);
    const origin = base.protocol + "//" + base.host;
    // The issuer's directory, and the key it issues under now, which the server must publish.
    let dir: { "issuer-request-uri": string; "token-keys": { "token-type": number; "token-key": string; "not-before"?: number }[] };
    const dirURL = origin + DIRECTORY_PATH;
    try {
      const resp = await this.fetchFn(dirURL, { headers: { Accept: "application/private-token-issuer-directory" } });
      if (resp.status !== 200) throw new Error(`answered ${resp.status}`);
      dir = await resp.json();
    } catch (e) {
      throw new BlindError("network", "reading the token issuer's directory", { cause: e });
    }
    const keys = (dir["token-keys"] ?? []).filter((k) => k["token-type"] === TOKEN_TYPE);
    if (keys.length > MAX_PUBLISHED_KEYS || t.token_keys.length > MAX_PUBLISHED_KEYS) {
      throw new BlindError("tampered", `the token issuer lists ${keys.length} keys and the server ${t.token_keys.length}: more than a key rotation needs, so keys could be one user's; refusing to fetch tokens`);
    }
    const now = Date.now() / 1000;
    const current = keys.find((k) => !(k["not-before"] && k["not-before"] > now));
    if (!current) throw new BlindError("network", "the token issuer publishes no key in use now");
    const spki = decodeB64Any(current["token-key"]);
    if (!spki) throw new BlindError("network", "the token issuer's key is not base64url");
    const published = t.token_keys.some((k) => {
      const s = decodeB64Any(k.token_key);
      return s !== undefined && equal(s, spki);
    });
    if (!published) {
      throw new BlindError("tampered", "the token issuer offers this client a key the server does not publish: tokens under it could be told apart from other users'; refusing to fetch tokens");
    }
    const keyID = sha256(spki);
    const keyIDText = b64url(keyID);
    const reqURL = new URL(dir["issuer-request-uri"], dirURL).toString();
    const allotResp = await this.issuerFetch(origin + ALLOTMENT_PATH, { method: "GET" });
    const allot = (await allotResp.json()) as { left: number; next_period_at: number; token_key_id: string };
    if (allot.token_key_id !== keyIDText) {
      throw new BlindError("network", "the issuer's directory and its allotment name different keys (a rotation in flight?): try again in a minute");
    }
    const pk = await importTokenKey(spki);
    // Loaded when tokens are first fetched: only servers that charge need it.
    const { RSABSSA } = await import("@cloudflare/blindrsa-ts");
    const suite = RSABSSA.SHA384.PSS.Deterministic();
    const digest = sha256(challenge);
    const encChallenge = b64url(challenge, true);
    const got: WalletToken[] = [];
    let firstErr: unknown;
    let next = 0;
    const n = Math.max(0, allot.left | 0);
    const worker = async () => {
      while (next < n && firstErr === undefined) {
        next++;
        try {
          const nonce = random(32);
          const input = concat(Uint8Array.from([0, TOKEN_TYPE]), nonce, digest, keyID);
          const { blindedMsg, inv } = await suite.blind(pk, input);
          const body = concat(Uint8Array.from([0, TOKEN_TYPE, keyID[31]!]), blindedMsg);
          const resp = await this.issuerFetch(reqURL, {
            method: "POST",
            headers: { "Content-Type": "application/private-token-request", Accept: "application/private-token-response" },
            body: body as Uint8Array<ArrayBuffer>,
          });
          const sig = new Uint8Array(await resp.arrayBuffer());
          if (sig.length !== NK) throw new BlindError("network", `token response of ${sig.length} bytes`);
          let auth: Uint8Array;
          try {
            auth = await suite.finalize(pk, input, sig, inv);
          } catch (e) {
            throw new BlindError("tampered", "the token issuer signed with another key than the one it publishes", { cause: e });
          }
          got.push({ challenge: encChallenge, key_id: keyIDText, token: b64url(concat(input, auth), true) });
        } catch (e) {
          firstErr ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ISSUANCE_PARALLEL, Math.max(1, n)) }, worker));
    this.st.tokens.push(...got);
    this.st.issuer = t.issuer;
    this.st.next_allotment_at = allot.next_period_at;
    const used = firstErr instanceof BlindError && firstErr.kind === "quota";
    if (firstErr === undefined || used) this.st.fetched_key = this.newest(t);
    if (firstErr !== undefined && !used) throw firstErr;
    return got.length;
  }

  private checkChallenge(server: string, t: TokenConfig): Uint8Array {
    const bad = (why: string) => new BlindError("network", "the server's token challenge is not usable: " + why);
    const raw = decodeB64Any(t.challenge);
    if (!raw) throw bad("not base64url");
    let c: Challenge;
    try {
      c = parseChallenge(raw);
    } catch {
      throw bad("not a TokenChallenge of type 0x0002");
    }
    if (c.tokenType !== TOKEN_TYPE) throw bad("not a TokenChallenge of type 0x0002");
    if (hostOf(t.issuer) === "" || hostOf(t.issuer) !== c.issuerName) throw bad("it names another issuer than the one the server points to");
    if (c.redemptionContext.length !== 0) throw bad("it has a redemption context, which would tie tokens to this moment");
    const host = hostOf(server);
    if (c.originInfo !== "" && !c.originInfo.split(",").some((o) => o.toLowerCase() === host)) throw bad("its origin_info does not name this server");
    return raw;
  }
}

export { toUTF8 };
