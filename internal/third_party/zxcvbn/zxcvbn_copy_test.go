package zxcvbn

import "testing"

// The copy scores as upstream does (values from upstream v1.0.1), its
// dictionaries loaded on first use.
func TestScoresAsUpstream(t *testing.T) {
	for pw, want := range map[string]int{
		"a": 0, "password123": 0, "second password": 3,
		"correct horse battery staple": 4, "Tr0ub4dor&3": 4,
	} {
		if got := PasswordStrength(pw, []string{"frank"}).Score; got != want {
			t.Errorf("%q: score %d, want %d", pw, got, want)
		}
	}
	if got := PasswordStrength("frank1234", []string{"frank"}).Score; got > 1 {
		t.Errorf("a user input with digits scores %d", got)
	}
}
