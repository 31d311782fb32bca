package client

// Functions of the format (package format) that the client itself and
// cmd/blindbench call through package client. Other callers import
// format.

import "github.com/blindstore/blindstore/client/format"

// PayloadCapacity is format.PayloadCapacity.
func PayloadCapacity(blockSize int) int { return format.PayloadCapacity(blockSize) }

// PasswordLocator is format.PasswordLocator.
func PasswordLocator(username, password string, device *format.DeviceKey) (format.Locator, error) {
	return format.PasswordLocator(username, password, device)
}
