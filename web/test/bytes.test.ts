// isZero reads aligned words where it can: every offset, length and
// position of a lone non-zero byte must still be seen.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isZero } from "../src/bytes.js";

test("isZero sees a non-zero byte wherever it lies, at any alignment", () => {
  const buf = new Uint8Array(64);
  for (let off = 0; off < 8; off++) {
    for (let len = 0; len <= 40; len++) {
      const a = buf.subarray(off, off + len);
      assert.equal(isZero(a), true, `zeros at offset ${off}, length ${len}`);
      for (let i = 0; i < len; i++) {
        a[i] = 0x80;
        assert.equal(isZero(a), false, `byte ${i} at offset ${off}, length ${len}`);
        a[i] = 0;
      }
    }
  }
});
