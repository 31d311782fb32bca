package client

// Names of the format (package format) that the client's callers reach
// through package client: the errors its Kind classification recognizes,
// and what cmd/blind and cmd/blindbench use. New code imports format.

import "github.com/blindstore/blindstore/client/format"

// Errors of the format, classified as KindTampered (errors.go).
var (
	ErrTampered  = format.ErrTampered
	ErrBlockSize = format.ErrBlockSize
	ErrBadFrame  = format.ErrBadFrame
	ErrBadRoot   = format.ErrBadRoot
	ErrBadHead   = format.ErrBadHead
)

// KeySize is format.KeySize.
const KeySize = format.KeySize

// DeviceKey is format.DeviceKey.
type DeviceKey = format.DeviceKey

// NewDeviceKey returns a fresh random device key.
func NewDeviceKey() (DeviceKey, error) { return format.NewDeviceKey() }

// ParseRecoveryCode is format.ParseRecoveryCode.
func ParseRecoveryCode(s string) (format.RecoveryCode, error) { return format.ParseRecoveryCode(s) }

// PayloadCapacity is format.PayloadCapacity.
func PayloadCapacity(blockSize int) int { return format.PayloadCapacity(blockSize) }

// PasswordLocator is format.PasswordLocator.
func PasswordLocator(username, password string, device *DeviceKey) (format.Locator, error) {
	return format.PasswordLocator(username, password, device)
}
