// The one way this package reaches a Node built-in: Node's own fast paths
// (node:crypto, node:net, node:http) where the package runs in Node 20.16 or later,
// found at run time through globalThis so that a bundler never sees an
// import of them. In browsers (and older Node) it answers undefined and
// the portable code (noble, WebCrypto, fetch) does the work.
export function nodeBuiltin<T>(id: "node:crypto" | "node:http" | "node:https" | "node:net"): T | undefined {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof p?.getBuiltinModule !== "function") return undefined;
  try {
    return (p.getBuiltinModule(id) as T | undefined) ?? undefined;
  } catch {
    return undefined;
  }
}
