package format

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsDoNotPrint(t *testing.T) {
	key := testKey("secret")
	owner := OwnerSecret(testKey("owner"))
	dev := DeviceKey(testKey("device"))
	loc := master(testKey("m")).locator()
	code := RecoveryCode{1, 2, 3}
	root := &Root{AccountKey: key, OwnerSecret: owner}
	leaks := []string{
		hex.EncodeToString(key[:]), hex.EncodeToString(owner[:]), hex.EncodeToString(dev[:]),
		hex.EncodeToString(loc.Key[:]), hex.EncodeToString(loc.Proof[:]), hex.EncodeToString(loc.ID[:]),
		fmt.Sprint(key[:4]), fmt.Sprint(owner[:4]), // decimal byte lists, as %v prints arrays
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		fmt.Fprintf(&out, verb+"\n", key)
		fmt.Fprintf(&out, verb+"\n", owner)
		fmt.Fprintf(&out, verb+"\n", dev)
		fmt.Fprintf(&out, verb+"\n", loc)
		fmt.Fprintf(&out, verb+"\n", root)
		fmt.Fprintf(&out, verb+"\n", struct{ L Locator }{loc})
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("secrets", "key", key, "owner", owner, "device", dev, "locator", loc, "code", code, "root", root)
	}
	s := strings.ToLower(out.String())
	for _, l := range append(leaks, strings.ToLower(code.String())) {
		l = strings.Trim(l, "[]")
		if strings.Contains(s, strings.ToLower(l)) {
			t.Fatalf("output carries a secret (%s):\n%s", l, s)
		}
	}
	if !strings.Contains(s, redacted) {
		t.Fatal("no placeholder printed")
	}
}
