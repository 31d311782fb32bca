//go:build !linux

package postgres

import "github.com/jackc/pgx/v5/pgconn"

// lowatDial leaves dial as it is: the receive mark is set on Linux only
// (lowat_linux.go).
func lowatDial(dial pgconn.DialFunc) pgconn.DialFunc { return dial }
