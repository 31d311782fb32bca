package format

import (
	"fmt"
	"io"
	"log/slog"
)

// Secrets print as a placeholder under every fmt verb and in slog, so
// that a stray log line or error message cannot carry one. Code that
// must write a secret (a device key file) does so explicitly.

const redacted = "[redacted]"

func writeRedacted(f fmt.State) { io.WriteString(f, redacted) }

// Format prints a placeholder.
func (Key) Format(f fmt.State, _ rune) { writeRedacted(f) }

// LogValue logs a placeholder.
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format prints a placeholder.
func (OwnerSecret) Format(f fmt.State, _ rune) { writeRedacted(f) }

// LogValue logs a placeholder.
func (OwnerSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format prints a placeholder.
func (DeviceKey) Format(f fmt.State, _ rune) { writeRedacted(f) }

// LogValue logs a placeholder.
func (DeviceKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format prints a placeholder: a locator holds a write proof and a key,
// and its ID alone links the account to its root.
func (Locator) Format(f fmt.State, _ rune) { writeRedacted(f) }

// LogValue logs a placeholder.
func (Locator) LogValue() slog.Value { return slog.StringValue(redacted) }

// LogValue logs a placeholder. String still shows the code: showing it
// to the user once is its purpose.
func (RecoveryCode) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format prints a placeholder in place of the secrets; the index list is
// not secret from the server but links blocks to one account.
func (*Root) Format(f fmt.State, _ rune) { writeRedacted(f) }

// LogValue logs a placeholder.
func (*Root) LogValue() slog.Value { return slog.StringValue(redacted) }
