package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/client/format"
)

func TestDeviceKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.key")
	k, err := format.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	if k == (format.DeviceKey{}) {
		t.Fatal("NewDeviceKey returned zeros")
	}
	if err := WriteDeviceKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("device key file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := ReadDeviceKeyFile(path)
	if err != nil || got != k {
		t.Fatalf("ReadDeviceKeyFile = %x, %v", got, err)
	}
	other, _ := format.NewDeviceKey()
	if err := WriteDeviceKeyFile(path, other); err == nil {
		t.Fatal("WriteDeviceKeyFile replaced an existing key")
	}
	if got, _ := ReadDeviceKeyFile(path); got != k {
		t.Fatal("the existing key changed")
	}
	text, _ := k.MarshalText()
	for name, content := range map[string]string{
		"wrong prefix": strings.Replace(string(text), "v1", "v2", 1),
		"short":        string(text[:len(text)-2]),
		"not base64":   string(text[:len(text)-1]) + "!",
		"empty":        "",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadDeviceKeyFile(p); err == nil {
			t.Errorf("%s device key file accepted", name)
		}
	}
	if _, err := ReadDeviceKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
