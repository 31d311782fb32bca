// hash-wasm's Argon2id and SHA-256, in a module of their own so that
// crypto.ts can load them when first needed: in Node, hash-wasm's package
// entry holds every algorithm's WebAssembly as text and parsing it costs
// about 0.3 s at start, which a put or get (hashing with node:crypto)
// never needs. A bundler still sees these two names only.
export { argon2id, createSHA256 } from "hash-wasm";
