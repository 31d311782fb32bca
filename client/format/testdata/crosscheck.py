#!/usr/bin/env python3
"""Independent computation of the client's golden vectors (keys_test.go,
block_test.go), from docs/spec.md and the spec comments of keys.go and
block.go, with the `cryptography` package instead of Go's x/crypto.

    python3 client/format/testdata/crosscheck.py

The printed values must equal the constants in the Go tests."""

import hashlib, hmac, struct, unicodedata
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


def hkdf(ikm, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=None, info=info.encode()).derive(ikm)


def locator(master):
    rid = bytearray(hkdf(master, "blindstore/v1/root-id", 16))
    rid[6] = rid[6] & 0x0F | 0x40
    rid[8] = rid[8] & 0x3F | 0x80
    return bytes(rid), hkdf(master, "blindstore/v1/root-proof"), hkdf(master, "blindstore/v1/root-key")


def show(name, loc):
    for label, v in zip(("id", "proof", "key"), loc):
        print(f"{name}.{label} = {v.hex()}")


def normalize_user(u):
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", u).lower()).strip()


user = normalize_user("  Ａlice ")  # fullwidth A, surrounding spaces
password = unicodedata.normalize("NFC", "correct horse battery staple")
salt = hashlib.sha256(b"blindstore/v1/salt" + user.encode()).digest()
master = Argon2id(salt=salt, length=32, iterations=3, lanes=4, memory_cost=64 * 1024).derive(password.encode())
print("user =", user)
print("master =", master.hex())
show("password", locator(master))

device = bytes(range(32))
show("device", locator(hkdf(master + device, "blindstore/v1/device")))

code = bytes(range(100, 120))
show("recovery", locator(hkdf(code, "blindstore/v1/recovery")))
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
bits = int.from_bytes(code, "big")
chars = "".join(alphabet[(bits >> (5 * (31 - i))) & 31] for i in range(32))
print("recovery.code =", "-".join(chars[i:i + 4] for i in range(0, 32, 4)))

owner = bytes([7]) * 32
block_id = bytes.fromhex("0f1e2d3c4b5a49788796a5b4c3d2e1f0")
w = hmac.new(owner, b"proof" + block_id, hashlib.sha256).digest()
print("write_proof =", w.hex())
print("renew_proof =", hashlib.sha256(b"blindstore/v1/renew" + w).digest().hex())


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def encrypt(key, bid, payload, block_size, nonce):
    frame = struct.pack(">I", len(payload)) + payload
    frame += bytes(block_size - 24 - 16 - len(frame))
    sub = hchacha20(key, nonce[:16])
    ct = ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce[16:], frame, b"blindstore/v1/block" + bid)
    return nonce + ct


key = hashlib.sha256(b"golden block key").digest()
nonce = bytes(range(24))
block = encrypt(key, block_id, b"blindstore golden block v1", 1024, nonce)
print("block.sha256 =", hashlib.sha256(block).hexdigest())
print("block.head =", block[:48].hex())
