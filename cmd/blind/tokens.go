package main

// Tokens (docs/spec.md §14): a server whose /v1/config has "tokens" charges
// a Privacy Pass token for each write that may create blocks and each
// renewal request. The wallet (client.Wallet) lives beside the session,
// in tokens.json (mode 0600), and keeps the invite code given to
// signup or login with --invite. Every command that talks to such a
// server first fetches the period's allotment if it is due.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/blindstore/blindstore/client"
)

const tokensFile = "tokens.json"

// attachWallet gives r the wallet of the configuration directory. Without
// a configuration directory there is no wallet, and a paid write fails
// with a clear message.
func (a *app) attachWallet(r *client.Remote, hc *http.Client) {
	d, err := configDir()
	if err != nil {
		return
	}
	a.wallet = client.OpenWallet(filepath.Join(d, tokensFile), hc)
	r.Tokens = a.wallet
}

// prepareTokens records the --invite code, if one was given, and fetches
// the period's allotment when the server charges and one is due. A
// failure to fetch is an error when invite is set (the user asked for
// it) and when the issuer looks hostile; otherwise a warning, since
// tokens already held may do.
func (a *app) prepareTokens(r *client.Remote, invite string) error {
	if a.wallet == nil {
		if invite != "" {
			return &client.Error{Kind: client.KindLocalIO, Msg: "no configuration directory to keep tokens in: set BLIND_CONFIG_DIR"}
		}
		return nil
	}
	if invite != "" {
		if err := a.wallet.SetInvite(a.ctx, invite); err != nil {
			return err
		}
	}
	cfg, err := r.Config(a.ctx)
	if err != nil {
		return err
	}
	if cfg.Tokens == nil {
		return nil
	}
	n, err := a.wallet.Refill(a.ctx, r.URL(), cfg)
	if n > 0 && !a.g.json {
		fmt.Fprintf(a.stderr, "fetched this period's %d write tokens\n", n)
	}
	switch {
	case err == nil:
		return nil
	case invite != "" || client.KindOf(err) == client.KindTampered || client.KindOf(err) == client.KindAuth:
		return err
	case client.KindOf(err) == client.KindQuota:
		// No invite kept, or this period's allotment already taken:
		// writes say so when they find no token.
		return nil
	}
	fmt.Fprintf(a.stderr, "warning: could not fetch write tokens now (%v); using those held\n", err)
	return nil
}

// renewPaid renews what is stale; out of tokens, it warns instead of
// failing, so that reading still works.
func (a *app) renewPaid(acc *client.Account) (*client.RenewReport, error) {
	rep, err := acc.Renew(a.ctx)
	if err != nil && client.KindOf(err) == client.KindQuota {
		fmt.Fprintf(a.stderr, "warning: blocks were not renewed: %v\n", err)
		return &client.RenewReport{Safe: acc.SafeUntil()}, nil
	}
	return rep, err
}

// tokenStatus describes the wallet for status, or nil when the server
// takes no tokens.
func (a *app) tokenStatus(acc *client.Account) (*client.TokenStatus, string, error) {
	cfg := acc.Config()
	if cfg.Tokens == nil || a.wallet == nil {
		return nil, "", nil
	}
	st, err := a.wallet.Status(a.ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	text := fmt.Sprintf("tokens:  %d left (one pays for up to %d blocks written or renewed)", st.Left, cfg.Tokens.BlocksPerToken)
	if !st.NextAt.IsZero() {
		text += fmt.Sprintf("; next allotment %s", st.NextAt.Local().Format(time.RFC1123))
	}
	if !st.Invite {
		text += "; no invite code kept: log in with --invite CODE to fetch more"
	}
	return &st, text + "\n", nil
}
