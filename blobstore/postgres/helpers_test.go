package postgres

import (
	"io"
	"log/slog"
)

// quietLogger keeps tests' output to what fails.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
