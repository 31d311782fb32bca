package client

// Device key files: the one part of device keys that touches the disk.
// The key itself and its text form are the format's (format/keys.go).

import (
	"fmt"
	"os"

	"github.com/blindstore/blindstore/client/format"
)

// WriteDeviceKeyFile writes a new device key file readable only by its
// owner. It never replaces an existing file: losing a device key locks
// the user out of the account.
func WriteDeviceKeyFile(path string, d format.DeviceKey) error {
	text, _ := d.MarshalText()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("client: creating the device key file: %w", err)
	}
	if _, err := f.Write(append(text, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("client: writing the device key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("client: writing the device key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("client: writing the device key file: %w", err)
	}
	return nil
}

// ReadDeviceKeyFile reads a file written by WriteDeviceKeyFile.
func ReadDeviceKeyFile(path string) (format.DeviceKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return format.DeviceKey{}, fmt.Errorf("client: reading the device key file: %w", err)
	}
	var d format.DeviceKey
	if err := d.UnmarshalText(b); err != nil {
		return format.DeviceKey{}, err
	}
	return d, nil
}
