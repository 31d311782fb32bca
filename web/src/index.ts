// @blindstore/client: a blindstore client for browsers (in a Web Worker)
// and Node 20+, byte for byte compatible with the Go client. The format is
// docs/spec.md; the Go twin is the client package.
export { Remote, type ServerConfig } from "./remote.js";
export { Account, signup, login, loginRecovery, fetchCapability, type FileInfo, type Status, type RenewReport, type Progress } from "./account.js";
export { BlindError, type Kind, exitCodes, kindOf } from "./errors.js";
export { TokenWallet, type WalletState } from "./tokens.js";
export { deviceKeyText, parseDeviceKey, parseCapability, normalizeUsername } from "./format.js";
export { readAll, type Source } from "./stream.js";
