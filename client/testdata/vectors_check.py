#!/usr/bin/env python3
"""An independent reading of docs/vectors.json, written from docs/spec.md
alone with Python's standard library and the `cryptography` package (no
Go code): it recomputes every derivation and every block of the vectors
and decodes every format, and fails on the first disagreement.

    python3 client/testdata/vectors_check.py [path/to/vectors.json]

It is the check that the spec is complete enough to implement from."""

import base64, hashlib, hmac, json, struct, sys, unicodedata, zlib
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def H(x):
    return bytes.fromhex(x)


def sha256(b):
    return hashlib.sha256(b).digest()


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def hkdf(ikm, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=None, info=info).derive(ikm)


def uuid_bytes(s):
    return bytes.fromhex(s.replace("-", ""))


def uuid_str(b):
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# --- §4.1 locators ---

def locator(master):
    rid = bytearray(hkdf(master, b"blindstore/v1/root-id", 16))
    rid[6] = rid[6] & 0x0F | 0x40
    rid[8] = rid[8] & 0x3F | 0x80
    return {"id": uuid_str(bytes(rid)), "proof": hkdf(master, b"blindstore/v1/root-proof").hex(),
            "key": hkdf(master, b"blindstore/v1/root-key").hex()}


# --- §6 blocks: XChaCha20-Poly1305 ---

def rotl(v, c):
    return ((v << c) & M32) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & M32; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & M32; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & M32; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & M32; s[b] = rotl(s[b] ^ s[c], 7)


def double_rounds(s, n):
    for _ in range(n):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)


SIGMA = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]


def hchacha20(key, nonce16):
    s = SIGMA + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    double_rounds(s, 10)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def block_ad(bid):
    return b"blindstore/v1/block" + bid


def seal(key, bid, payload, block_size, nonce):
    frame = struct.pack(">I", len(payload)) + payload
    frame += bytes(block_size - 40 - len(frame))
    sub = hchacha20(key, nonce[:16])
    return nonce + ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce[16:], frame, block_ad(bid))


def open_block(key, bid, block, block_size):
    check(len(block) == block_size, "block size")
    sub = hchacha20(key, block[:16])
    frame = ChaCha20Poly1305(sub).decrypt(b"\0" * 4 + block[16:24], block[24:], block_ad(bid))
    n = struct.unpack(">I", frame[:4])[0]
    check(n <= len(frame) - 4, "frame length")
    check(all(c == 0 for c in frame[4 + n:]), "padding is zero")
    return frame[4:4 + n]


def check_block(v, bs):
    key, bid, nonce = H(v["key"]), uuid_bytes(v["id"]), H(v["nonce"])
    check(H(v["ad"]) == block_ad(bid), v["role"] + ": ad")
    blk = seal(key, bid, H(v["payload"]), bs, nonce)
    check(blk == H(v["block"]), v["role"] + ": ciphertext")
    check(open_block(key, bid, blk, bs) == H(v["payload"]), v["role"] + ": opens")
    check(sha256(blk)[:16] == H(v["etag"]), v["role"] + ": etag")
    check(v["etag_header"] == '"' + b64u(H(v["etag"])) + '"', v["role"] + ": etag header")
    return H(v["payload"])


# --- §5 proofs ---

def write_proof(owner, bid):
    return hmac.new(owner, b"proof" + bid, hashlib.sha256).digest()


def renew_proof(w):
    return sha256(b"blindstore/v1/renew" + w)


# --- §9 readers ---

class R:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        check(self.i + n <= len(self.b), "truncated")
        x = self.b[self.i:self.i + n]
        self.i += n
        return x

    def u8(self): return self.take(1)[0]
    def u16(self): return struct.unpack(">H", self.take(2))[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def u64(self): return struct.unpack(">Q", self.take(8))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        v, shift, start = 0, 0, self.i
        while True:
            c = self.u8()
            v |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                break
        check(self.i - start == max(1, (v.bit_length() + 6) // 7), "minimal varint")
        return v

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def ref(self):
        return {"id": uuid_str(self.take(16)), "etag": self.take(16).hex()}

    def done(self):
        check(self.i == len(self.b), "trailing bytes")


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def decode_leaf(b):
    r = R(b)
    check(r.u8() == 2 and r.u8() == 1, "leaf header")
    files, prev = [], b""
    for i in range(r.uvarint()):
        p = r.uvarint()
        name = prev[:p] + r.take(r.uvarint())
        check(i == 0 or common_prefix(prev, name) == p, "longest common prefix")
        f = {"name": name.decode(), "size": r.uvarint(), "mode": r.uvarint(), "mtime_sec": r.varint(),
             "mtime_nsec": r.uvarint(), "renewed": r.uvarint()}
        flags = r.u8()
        check(flags & ~3 == 0, "flags")
        f["hash"], f["key"], f["key_shared"] = r.take(32).hex(), r.take(32).hex(), bool(flags & 2)
        f["chunks"] = []
        if flags & 1:
            f["inline"] = r.take(f["size"]).hex()
        else:
            for _ in range(r.uvarint()):
                c = r.ref()
                c["size"], c["hash"], c["mark"] = r.uvarint(), r.take(32).hex(), r.take(8).hex()
                f["chunks"].append(c)
        f["manifest"] = [r.ref() for _ in range(r.uvarint())]
        files.append(f)
        prev = name
    r.done()
    return files


def decode_dir(b, payload):
    r = R(b)
    check(r.u8() == 2, "dir format")
    kind = r.u8()
    check(kind in (2, 3), "dir kind")
    renewed = r.uvarint() if kind == 3 else 0
    leaves = []
    for _ in range(r.uvarint()):
        n = r.uvarint()
        leaves.append({"len": n, "blocks": [r.ref() for _ in range(-(-n // payload))]})
    r.done()
    return renewed, leaves


def decode_index_v1(body):
    r = R(body)
    gen, files = r.u64(), []
    for _ in range(r.u32()):
        f = {"name": r.take(r.u16()).decode(), "size": r.u64(), "mode": r.u32(), "mtime_sec": r.i64(),
             "mtime_nsec": r.u32(), "renewed": r.u64(), "hash": r.take(32).hex(), "key": r.take(32).hex()}
        f["chunks"] = []
        for _ in range(r.u32()):
            c = r.ref()
            c["size"], c["hash"] = r.u32(), r.take(32).hex()
            f["chunks"].append(c)
        f["manifest"] = [r.ref() for _ in range(r.u32())]
        files.append(f)
    r.done()
    return gen, files


def padme(n):
    if n < 2:
        return n
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def padded_blocks(n, p):
    return padme(-(-padme(n) // p))


# --- §10.2 chunker ---

def chacha8rand(seed, count):
    """The first count uint64 values of C2SP chacha8rand."""
    key = list(struct.unpack("<8I", seed))
    out = []
    while True:
        for c in (0, 4, 8, 12):
            words = []  # words[w][j]: word w of block j (counter c + j)
            blocks = []
            for j in range(4):
                s = SIGMA + key + [c + j, 0, 0, 0]
                double_rounds(s, 4)
                for w in range(4, 12):
                    s[w] = (s[w] + key[w - 4]) & M32
                blocks.append(s)
            buf = []
            for k in range(32):
                w, j = k // 2, 2 * (k % 2)
                buf.append(blocks[j][w] | blocks[j + 1][w] << 32)
            out += buf[:28] if c == 12 else buf
            if len(out) >= count:
                return out[:count]
        key = []
        for x in buf[28:32]:
            key += [x & M32, x >> 32]


def gear_hash(data, table):
    h = 0
    for x in data:
        h = ((h << 1) + table[x]) & M64
    return h


def chunk(data, table, cap, old=None):
    """The chunks (length, mark, old) of data, per §10.2 and §10.3."""
    mn = cap - cap // 4
    marks = {o["mark"] for o in old} if old else set()
    claim = {}
    for o in old or []:
        claim[(o["len"], o["hash"])] = claim.get((o["len"], o["hash"]), 0) + 1
    out, start, drift = [], 0, 0
    while start < len(data):
        rest = len(data) - start
        n = 0
        if rest > cap:
            b = data[start:start + cap]
            if marks and drift <= 8:
                for p in range(64, cap + 1):
                    if gear_hash(b[p - 64:p], table) in marks:
                        n = p
                        break
            if n == 0:
                best, n = -1, mn
                for p in range(mn, cap + 1):
                    h = gear_hash(b[p - 64:p], table)
                    if h >= best:
                        best, n = h, p
        else:
            n = rest
        c = data[start:start + n]
        key = (n, sha256(c))
        is_old = claim.get(key, 0) > 0
        if is_old:
            claim[key] -= 1
        if old:
            drift = 0 if is_old else drift + 1
        out.append((n, gear_hash(c[-64:], table), is_old, sha256(c)))
        start += n
    return out


def stream(label, n):
    out, i = b"", 0
    while len(out) < n:
        out += sha256(label.encode() + struct.pack(">I", i))
        i += 1
    return out[:n]


ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def recovery_string(code):
    bits = int.from_bytes(code, "big")
    s = "".join(ALPHABET[(bits >> (5 * (31 - i))) & 31] for i in range(32))
    return "-".join(s[i:i + 4] for i in range(0, 32, 4))


def parse_recovery(s):
    t = "".join({"O": "0", "I": "1", "L": "1"}.get(c, c) for c in s.upper() if c not in "- \t")
    if len(t) != 32 or any(c not in ALPHABET for c in t):
        return None
    v = 0
    for c in t:
        v = v << 5 | ALPHABET.index(c)
    return v.to_bytes(20, "big")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/vectors.json"
    v = json.load(open(path))
    bs, cap = v["block_size"], v["payload_capacity"]
    check(cap == bs - 44 and v["inline_max"] == cap // 32, "capacities")

    for p in v["passwords"]:
        # Simple (one code point to one) lower-casing, code point by code
        # point: Python's str.lower() is the full, context-sensitive
        # mapping (U+0130 to two code points, a final sigma to ς).
        lower = "".join(c.lower()[0] for c in unicodedata.normalize("NFKC", p["username"]))
        user = unicodedata.normalize("NFKC", lower).strip()
        check(user == p["username_normalized"], "user name normalization")
        pw = unicodedata.normalize("NFC", p["password"]).encode()
        check(pw == H(p["password_normalized"]), "password normalization")
        salt = sha256(b"blindstore/v1/salt" + user.encode())
        check(salt == H(p["salt"]), "salt")
        a = p["argon2id"]
        m = Argon2id(salt=salt, length=a["length"], iterations=a["time"], lanes=a["threads"], memory_cost=a["memory_kib"]).derive(pw)
        check(m == H(p["master"]), "argon2id master")
        check(locator(m) == p["locator"], "password locator")
        if "device_key" in p:
            d = H(p["device_key"])
            check(p["device_key_file"] == "blindstore-device-key-v1:" + b64u(d), "device key file")
            dm = hkdf(m + d, b"blindstore/v1/device")
            check(dm == H(p["device_master"]) and locator(dm) == p["device_locator"], "device locator")
    print("passwords, device key: ok")

    rc = v["recovery"]
    code = H(rc["code_bytes"])
    check(recovery_string(code) == rc["code"], "recovery code string")
    for x in rc["parse"]:
        check((parse_recovery(x["input"]) == code) == x["valid"], "recovery parse " + x["input"])
    rm = hkdf(code, b"blindstore/v1/recovery")
    check(rm == H(rc["master"]) and locator(rm) == rc["locator"], "recovery locator")
    print("recovery code: ok")

    for p in v["proofs"]:
        w = write_proof(H(p["owner_secret"]), uuid_bytes(p["id"]))
        r = renew_proof(w)
        check(w.hex() == p["write_proof"] and b64u(w) == p["write_proof_base64url"], "write proof")
        check(r.hex() == p["renew_proof"] and b64u(r) == p["renew_proof_base64url"], "renew proof")
        check(sha256(r).hex() == p["proof_hash"], "proof hash")
    for p in v["padme"]:
        check(padme(p["n"]) == p["padme"], "padme %d" % p["n"])
        check((padded_blocks(p["n"], cap) if p["n"] else 0) == p["padded_blocks"], "padded blocks %d" % p["n"])
    print("proofs, padme: ok")

    ch = v["chunker"]
    seed = hkdf(H(ch["account_key"]), b"blindstore/v1/chunker")
    check(seed == H(ch["seed"]), "chunker seed")
    table = chacha8rand(seed, 256)
    check(["%016x" % x for x in table] == ch["table"], "gear table")
    data = stream(ch["input_label"], ch["input_len"])
    check(sha256(data) == H(ch["input_sha256"]), "chunker input")
    check(ch["min"] == ch["capacity"] - ch["capacity"] // 4, "chunker min")
    cuts = chunk(data, table, ch["capacity"])
    check([(c[0], "%016x" % c[1]) for c in cuts] == [(c["len"], c["mark"]) for c in ch["chunks"]], "chunk cuts")
    ed = ch["edit"]
    edited = data[:ed["insert_at"]] + ed["insert"].encode() + data[ed["insert_at"]:]
    old = [{"len": c[0], "mark": c[1], "hash": c[3]} for c in cuts]
    ecuts = chunk(edited, table, ch["capacity"], old)
    check([(c[0], "%016x" % c[1], c[2]) for c in ecuts] == [(c["len"], c["mark"], c.get("old", False)) for c in ed["chunks"]], "chunk cuts after an edit")
    print("chunker: ok")

    a = v["account"]
    ak, owner = H(a["account_key"]), H(a["owner_secret"])
    check(H(a["root_payload"]) == b"\x01" + ak + owner + bytes(12), "root payload")
    pl = v["passwords"][0]["locator"]
    for blk, loc in ((a["root"], pl), (a["recovery_root"], rc["locator"])):
        check(blk["id"] == loc["id"] and blk["key"] == loc["key"] and blk["write_proof"] == loc["proof"], "root locator")
        check(check_block(blk, bs) == H(a["root_payload"]), "root block payload")
    hm = hkdf(ak + owner, b"blindstore/v1/head")
    check(hm == H(a["head_master"]) and locator(hm) == a["head_locator"], "head locator")

    hd = a["head"]
    r = R(check_block(hd["block"], bs))
    check(r.u8() == 2 and r.u64() == hd["generation"], "head version, generation")
    dirs = [r.ref() for _ in range(r.u32())]
    check(dirs == hd["dirs"], "head dirs")
    roots = []
    for _ in range(r.u8()):
        roots.append({"kind": r.u8(), "id": uuid_str(r.take(16)), "proof": r.take(32).hex()})
    r.done()
    check(roots == hd["roots"], "head roots")

    blocks = {}
    for b in a["index_blocks"] + a["data_blocks"] + a["share"]["manifest_blocks"] + [a["share"]["pointer"]]:
        p = check_block(b, bs)
        check(H(b["write_proof"]) == write_proof(owner, uuid_bytes(b["id"])), "write proof of " + b["role"])
        blocks[b["id"]] = (b, p)
    files, renewed = [], None
    for i, d in enumerate(dirs):
        b, p = blocks[d["id"]]
        check(b["etag"] == d["etag"] and b["key"] == ak.hex(), "dir block")
        rn, leaves = decode_dir(p, cap)
        check(i == 0 or rn == 0, "renewal in the first dir only")
        renewed = rn if i == 0 else renewed
        for leaf in leaves:
            enc = b""
            for ref in leaf["blocks"]:
                lb, lp = blocks[ref["id"]]
                check(lb["etag"] == ref["etag"], "leaf block etag")
                enc += lp
            check(len(enc) == leaf["len"], "leaf length")
            files += decode_leaf(enc)
    check(renewed == a["index"]["renewed"], "index renewal")
    want = a["index"]["files"]
    check(len(files) == len(want), "file count")
    for f, w in zip(files, want):
        content = H(w["content"])
        for k in ("name", "size", "mode", "mtime_sec", "mtime_nsec", "renewed", "hash", "key", "key_shared", "manifest"):
            check(f[k] == w[k], "file %s: %s" % (w["name"], k))
        check(f.get("inline", "") == w.get("inline", ""), "inline content")
        check([{k: c[k] for k in ("id", "etag", "size", "hash", "mark")} for c in f["chunks"]] ==
              [{k: c[k] for k in ("id", "etag", "size", "hash", "mark")} for c in w["chunks"]], "chunks of " + w["name"])
        got = H(f.get("inline", ""))
        for c in f["chunks"]:
            b, p = blocks[c["id"]]
            check(b["key"] == f["key"] and b["etag"] == c["etag"], "data block")
            check(len(p) == c["size"] and sha256(p).hex() == c["hash"], "chunk size and hash")
            got += p
        check(got == content and sha256(got).hex() == f["hash"] and len(got) == f["size"], "content of " + w["name"])
    print("account (root, head, index tree, data): ok")

    sh = a["share"]
    f = next(x for x in want if x["name"] == sh["file"])
    mid = uuid_bytes(sh["manifest_id"])
    ck = hkdf(H(f["key"]), b"blindstore/v1/share" + mid)
    check(ck == H(sh["cap_key"]), "cap key")
    check(sh["capability"] == "blind1:" + sh["manifest_id"] + ":" + b64u(ck), "capability string")
    pb, pp = blocks[sh["manifest_id"]]
    r = R(pp)
    check(r.u8() == 2, "pointer version")
    n, k = r.u64(), r.u32()
    refs = [r.ref() for _ in range(k)]
    r.done()
    check(n == sh["encoded_len"] and k == padded_blocks(n, cap), "pointer")
    joined = b"".join(blocks[x["id"]][1] for x in refs)
    check(joined[:n] == H(sh["leaf"]) and not any(joined[n:]), "manifest join")
    mf = decode_leaf(joined[:n])
    check(len(mf) == 1 and mf[0]["name"] == f["name"].rsplit("/", 1)[-1] and mf[0]["renewed"] == 0 and not mf[0]["key_shared"] and mf[0]["manifest"] == [], "manifest entry")
    check(f["manifest"] == [{"id": pb["id"], "etag": pb["etag"]}] + refs, "the index lists the manifest")
    for c in v["capability_strings"]:
        s = c["input"].strip()
        ok = s.startswith("blind1:") and len(s) == 7 + 36 + 1 + 43 and s[7 + 36] == ":"
        if ok:
            try:
                ok = uuid_str(uuid_bytes(s[7:43])) == s[7:43] and uuid_bytes(s[7:43])[6] >> 4 == 4
                ok = ok and b64u(base64.urlsafe_b64decode(s[44:] + "=")) == s[44:]
            except ValueError:
                ok = False
        check(ok == c["valid"], "capability string " + c["input"])
    print("share: ok")

    lg = v["legacy"]
    enc = H(lg["index_v1_encoded"])
    check(enc[0] == 1, "format 1 version")
    body = zlib.decompress(enc[1:], -15)
    check(body == H(lg["index_v1_body"]), "format 1 body")
    hr = R(check_block(lg["head_v1"], bs))
    check(hr.u8() == 1, "head v1")
    hr.u64()
    ilen = hr.u64()
    irefs = [hr.ref() for _ in range(hr.u32())]
    check(ilen == len(enc) and len(irefs) == padded_blocks(ilen, cap), "head v1 index list")
    joined = b""
    for ref, b in zip(irefs, lg["index_v1_blocks"]):
        check(b["id"] == ref["id"] and b["etag"] == ref["etag"], "format 1 block list")
        joined += check_block(b, bs)
    check(joined[:ilen] == enc and not any(joined[ilen:]), "format 1 join")
    gen, files1 = decode_index_v1(body)
    check([x["name"] for x in files1] == ["docs/empty", sh["file"]], "format 1 files")
    print("legacy (format 1): ok")


if __name__ == "__main__":
    main()
