package redistest

import (
	"context"
	"strings"
	"testing"
)

// Two tests' prefixes never overlap, and a prefix's clean-up deletes its
// own keys and nothing else.
func TestPrefixIsolatesAndCleansUp(t *testing.T) {
	c := Client(t)
	ctx := context.Background()
	var a, b string
	t.Run("a", func(t *testing.T) {
		a = Prefix(t, c)
		b = Prefix(t, c)
		if a == b || strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
			t.Fatalf("prefixes %q and %q overlap", a, b)
		}
		for _, k := range []string{a + "x", a + "y:z", b + "x"} {
			if err := c.Set(ctx, k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// A key outside both prefixes, which the clean-up must leave.
		if err := c.Set(ctx, a[:len(a)-1]+"-outside", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	outside := a[:len(a)-1] + "-outside"
	defer c.Del(ctx, outside)
	if n, err := c.Exists(ctx, a+"x", a+"y:z", b+"x").Result(); err != nil || n != 0 {
		t.Errorf("after the test, %d of its 3 keys remain (err=%v)", n, err)
	}
	if n, err := c.Exists(ctx, outside).Result(); err != nil || n != 1 {
		t.Errorf("a key outside the prefixes was removed (exists=%d, err=%v)", n, err)
	}
}
