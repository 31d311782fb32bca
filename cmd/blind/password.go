package main

import (
	"math"

	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/internal/third_party/zxcvbn"
)

// minPasswordScore is the least zxcvbn score a new password needs: 3,
// "safely unguessable: moderate protection from an offline slow-hash
// attack" (10^8 guesses or more). The offline attack is the one that
// matters here: whoever holds a copy of the store can try passwords
// against the account's root without asking the server, each try
// costing one Argon2id derivation. Scores come from zxcvbn's estimator
// (dictionaries, keyboard patterns, dates, l33t), not from rules of our
// own about digits and capitals.
const minPasswordScore = 3

// checkNewPassword refuses a password that is too easy to guess, saying
// why and what to do instead.
func checkNewPassword(pw, user string) error {
	r := zxcvbn.PasswordStrength(pw, []string{user, "blindstore", "blind"})
	if r.Score >= minPasswordScore {
		return nil
	}
	exp := 0
	if r.Guesses >= 1 {
		exp = int(math.Log10(r.Guesses))
	}
	return cli.Usagef("this password is too easy to guess (found in about 10^%d tries; at least 10^8 are needed, since whoever copies the server's store can try passwords offline): use a passphrase of four or more unrelated words, or a password manager's", exp)
}
