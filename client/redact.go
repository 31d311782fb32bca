package client

import (
	"fmt"
	"io"
)

// Secrets print as a placeholder under every fmt verb and in slog, so
// that a stray log line or error message cannot carry one: the format's
// keys do so in format/redact.go, the Account here.

const redacted = "[redacted]"

func writeRedacted(f fmt.State) { io.WriteString(f, redacted) }
