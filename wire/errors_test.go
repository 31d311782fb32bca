package wire

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// Every code has one row, a server kind with a status, and a client kind
// with an exit code; LookupCode finds each row again.
func TestProblemCodeTable(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range ProblemCodes() {
		if p.Code == "" || seen[p.Code] {
			t.Fatalf("code %q is empty or listed twice", p.Code)
		}
		seen[p.Code] = true
		if p.Kind >= KindAuth {
			t.Errorf("code %s has the client's kind %v as its server kind", p.Code, p.Kind)
		}
		if s := kinds[p.Kind].status; s < 400 || s > 599 || http.StatusText(s) == "" {
			t.Errorf("code %s: kind %v has no error status (%d)", p.Code, p.Kind, s)
		}
		if p.Status() != p.Kind.HTTPStatus() || StatusOf(p.Code) != p.Status() {
			t.Errorf("code %s: status %d, StatusOf %d, kind's %d", p.Code, p.Status(), StatusOf(p.Code), p.Kind.HTTPStatus())
		}
		if e := p.ExitCode(); e < ExitOther || e > ExitQuota {
			t.Errorf("code %s: exit code %d", p.Code, e)
		}
		got, ok := LookupCode(p.Code)
		if !ok || got != p {
			t.Errorf("LookupCode(%s) = %+v, %v", p.Code, got, ok)
		}
		// An *Error of the code's kind answers the status the table says.
		if KindOf(E(p.Kind, p.Code, "x")).HTTPStatus() != StatusOf(p.Code) {
			t.Errorf("code %s: an error of its kind answers another status", p.Code)
		}
	}
	for _, c := range []string{CodeBadID, CodeBadSize, CodeBadProof, CodeBadETag, CodeBadRequest, CodeProofMismatch,
		CodeNotFound, CodeNoRoute, CodeMethodNotAllowed, CodePreconditionFailed, CodeBodyTooLarge, CodeHeaderTooLarge,
		CodeUnsupportedMedia, CodeRateLimited, CodeUnavailable, CodeFull, CodeTimeout, CodeInternal, CodeBatchTooLarge,
		CodeAborted, CodeTokenRequired, CodeTokenInvalid, CodeTokenSpent} {
		if !seen[c] {
			t.Errorf("code %s is not in the table", c)
		}
	}
	if _, ok := LookupCode("no_such_code"); ok || StatusOf("no_such_code") != http.StatusInternalServerError {
		t.Error("an unknown code was found, or answers other than 500")
	}
}

// Every kind has a name and an exit code; the server's kinds a distinct
// error status, the client's none.
func TestKindTable(t *testing.T) {
	statuses := map[int]Kind{}
	names := map[string]Kind{}
	for k := Kind(0); k < numKinds; k++ {
		info := kinds[k]
		if info.name == "" || info.exit < ExitOther || info.exit > ExitQuota {
			t.Errorf("kind %d: name %q, exit %d", k, info.name, info.exit)
		}
		if o, ok := names[info.name]; ok {
			t.Errorf("kinds %d and %d share the name %q", o, k, info.name)
		}
		names[info.name] = k
		if k >= KindAuth {
			if info.status != 0 || k.HTTPStatus() != http.StatusInternalServerError {
				t.Errorf("the client's kind %v has status %d", k, info.status)
			}
			continue
		}
		if o, ok := statuses[info.status]; ok {
			t.Errorf("kinds %v and %v share status %d", o, k, info.status)
		}
		statuses[info.status] = k
	}
	if Kind(200).String() != "kind(200)" || Kind(200).HTTPStatus() != 500 || Kind(200).ExitCode() != ExitOther {
		t.Error("an unknown kind is not answered as internal")
	}
}

// The exit codes blind documents, kind by kind, and the statuses the
// API documents; an aborted entry answers 424 wherever it appears.
func TestDocumentedNumbers(t *testing.T) {
	exits := map[Kind]int{KindInternal: 1, KindInvalid: 2, KindAuth: 3, KindNotFound: 4, KindConflict: 5,
		KindNetwork: 6, KindTampered: 7, KindLocalIO: 8, KindQuota: 9}
	for k, e := range exits {
		if k.ExitCode() != e {
			t.Errorf("kind %v exits %d, documented %d", k, k.ExitCode(), e)
		}
	}
	names := map[Kind]string{KindInternal: "other", KindAuth: "auth", KindNotFound: "not found", KindConflict: "conflict",
		KindNetwork: "network", KindTampered: "tampered", KindLocalIO: "local i/o", KindInvalid: "invalid", KindQuota: "quota"}
	for k, n := range names {
		if k.String() != n {
			t.Errorf("kind %d is named %q, blind --json says %q", k, k.String(), n)
		}
	}
	for code, status := range map[string]int{CodeAborted: 424, CodePreconditionFailed: 412, CodeProofMismatch: 403,
		CodeNotFound: 404, CodeTokenRequired: 401, CodeFull: 507, CodeRateLimited: 429, CodeUnavailable: 503} {
		if StatusOf(code) != status {
			t.Errorf("%s answers %d, documented %d", code, StatusOf(code), status)
		}
	}
	for code, k := range map[string]Kind{CodeNotFound: KindNotFound, CodeProofMismatch: KindAuth, CodePreconditionFailed: KindConflict,
		CodeFull: KindNetwork, CodeTokenRequired: KindQuota, CodeBadID: KindInternal, CodeNoRoute: KindInternal} {
		if p, _ := LookupCode(code); p.Client != k {
			t.Errorf("a client makes %v of %s, want %v", p.Client, code, k)
		}
	}
}

func TestKindOf(t *testing.T) {
	tampered := Sentinel(KindTampered, "bad block")
	for _, c := range []struct {
		err  error
		want Kind
	}{
		{nil, KindInternal},
		{errors.New("plain"), KindInternal},
		{tampered, KindTampered},
		{fmt.Errorf("reading: %w", tampered), KindTampered},
		{E(KindNotFound, CodeNotFound, "gone"), KindNotFound},
		{fmt.Errorf("block 3: %w", E(KindInvalid, CodeBadID, "bad")), KindInvalid},
		// An outer error that knows only "other" defers to its cause;
		// one that knows better wins over it.
		{Wrap(KindInternal, CodeInternal, "outer", tampered), KindTampered},
		{Wrap(KindUnavailable, CodeUnavailable, "outer", tampered), KindUnavailable},
		{fmt.Errorf("a: %w", Wrap(KindInternal, CodeInternal, "b", errors.New("c"))), KindInternal},
	} {
		if got := KindOf(c.err); got != c.want {
			t.Errorf("KindOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", tampered), tampered) || errors.Is(tampered, Sentinel(KindTampered, "bad block")) {
		t.Error("sentinels are not compared by identity")
	}
}
