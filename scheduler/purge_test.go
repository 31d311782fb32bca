package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
)

func refusal(t *testing.T, err error, want Guard, sentinel error) {
	t.Helper()
	var r *RefusedError
	if !errors.As(err, &r) {
		t.Fatalf("err = %v, want a refusal by the %v guard", err, want)
	}
	if r.Guard != want || !errors.Is(err, sentinel) {
		t.Fatalf("refused by %v (%v), want %v (%v)", r.Guard, err, want, sentinel)
	}
}

func run(t *testing.T, p *Purger, opt RunOptions) Report {
	t.Helper()
	rep, err := p.Run(context.Background(), opt)
	if err != nil {
		t.Fatalf("Run(%+v): %v", opt, err)
	}
	return rep
}

// The clock guard lets the same period and the next one through and
// records them; it refuses a jump of two periods or more and a clock
// that went back, each time, until an operator confirms; a refused run
// records nothing.
func TestClockGuard(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(30*time.Minute))
			logs := &logBuffer{}
			p := d.purger(t, PurgerConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			blocks := d.put(t, 3)
			p0 := d.bk.Current()

			if rep := run(t, p, RunOptions{}); rep.Highest != 0 || rep.Period != p0 || rep.Total != 3 || rep.Live != 3 || rep.Deleted != 0 {
				t.Fatalf("first run on a new store: %+v", rep)
			}
			if h := d.highest(t); h != p0 {
				t.Fatalf("highest after the first run = %d, want %d", h, p0)
			}
			run(t, p, RunOptions{}) // same period again
			d.clock.Advance(testPeriod)
			run(t, p, RunOptions{}) // the next period
			if h := d.highest(t); h != p0+1 {
				t.Fatalf("highest after a one-period step = %d, want %d", h, p0+1)
			}

			d.clock.Advance(2 * testPeriod) // p0+3: two periods past the record
			for i := 0; i < 2; i++ {
				rep, err := p.Run(context.Background(), RunOptions{Force: true})
				refusal(t, err, GuardClock, ErrClockJump)
				if rep.Refused != GuardClock || rep.Reason == "" || rep.Period != p0+3 || rep.Highest != p0+1 || rep.Deleted != 0 {
					t.Fatalf("refused run's report: %+v", rep)
				}
				if !strings.Contains(err.Error(), "--confirm-jump") {
					t.Errorf("refusal does not name its override: %v", err)
				}
				if h := d.highest(t); h != p0+1 {
					t.Fatalf("a refused run moved the highest period to %d", h)
				}
			}
			d.renew(t, blocks) // their owners log in at p0+3
			if rep := run(t, p, RunOptions{ConfirmJump: true}); rep.Period != p0+3 || rep.Deleted != 0 {
				t.Fatalf("confirmed jump: %+v", rep)
			}
			if h := d.highest(t); h != p0+3 {
				t.Fatalf("highest after a confirmed jump = %d, want %d", h, p0+3)
			}
			run(t, p, RunOptions{}) // and from there on it is normal

			d.clock.Advance(-2 * testPeriod) // p0+1: the clock went back
			_, err := p.Run(context.Background(), RunOptions{})
			refusal(t, err, GuardClock, ErrClockJump)
			if !strings.Contains(err.Error(), "behind") {
				t.Errorf("a clock that went back is not called so: %v", err)
			}
			// Confirmed (and forced), it runs with p0+1's live set, in
			// which the blocks renewed at p0+3 look expired: that is why a
			// clock that went back needs an operator. The record stays
			// where it was: SetHighestPeriod never lowers it.
			rep := run(t, p, RunOptions{ConfirmJump: true, Force: true})
			if rep.Period != p0+1 || rep.Highest != p0+3 || rep.Deleted != 3 {
				t.Fatalf("confirmed backwards run: %+v", rep)
			}
			if h := d.highest(t); h != p0+3 {
				t.Fatalf("highest after a confirmed backwards run = %d, want %d", h, p0+3)
			}

			c := p.Counters()
			if c.RefusedClock != 3 || c.RefusedKey != 0 || c.RefusedFraction != 0 || c.Runs != 6 || c.Deleted != 3 || c.Failed != 0 {
				t.Errorf("counters = %+v, want 3 clock refusals, 6 runs, 3 deleted", c)
			}
			if got := strings.Count(logs.String(), "purge refused"); got != 3 {
				t.Errorf("%d refusal log lines, want 3:\n%s", got, logs)
			}
			if !strings.Contains(logs.String(), "guard=clock") {
				t.Errorf("refusal lines do not name the guard:\n%s", logs)
			}
			for _, b := range blocks {
				if strings.Contains(logs.String(), b.id.String()) {
					t.Fatal("a log line names a block")
				}
			}
		})
	}
}

// Under another bucket key every stored bucket looks expired: the purger
// refuses whatever the options, deletes nothing and records nothing.
func TestKeyGuard(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(30*time.Minute))
			blocks := d.put(t, 4)
			logs := &logBuffer{}
			other := newBucketer(t, newKey(t), d.clock)
			p := d.purger(t, PurgerConfig{Bucketer: other, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			for _, opt := range []RunOptions{{}, {ConfirmJump: true, Force: true}, {DryRun: true}} {
				rep, err := p.Run(context.Background(), opt)
				refusal(t, err, GuardKey, ErrKeyMismatch)
				if rep.Refused != GuardKey || rep.Deleted != 0 {
					t.Fatalf("refused run's report: %+v", rep)
				}
			}
			if n := d.present(t, blocks); n != 4 {
				t.Fatalf("%d of 4 blocks left after refused purges under another key", n)
			}
			if h := d.highest(t); h != 0 {
				t.Fatalf("a refused run recorded period %d", h)
			}
			if c := p.Counters(); c.RefusedKey != 3 || c.Runs != 0 {
				t.Errorf("counters = %+v, want 3 key refusals", c)
			}
			if got := strings.Count(logs.String(), "guard=key"); got != 3 {
				t.Errorf("%d key refusal log lines, want 3:\n%s", got, logs)
			}
			// With the store's own key the same purge runs.
			if rep := run(t, d.purger(t, PurgerConfig{}), RunOptions{}); rep.Total != 4 || rep.Deleted != 0 {
				t.Fatalf("purge with the right key: %+v", rep)
			}
		})
	}
}

// fractionFixture holds 3 blocks of period p0 and 1 of p0+2, with the
// clock at p0+3 and that period's predecessor recorded: a purge would
// delete 3 of 4 blocks.
func fractionFixture(t *testing.T, o opener) (*deployment, []block, []block) {
	d := newDeployment(t, o, t0.Add(3*testPeriod+30*time.Minute))
	p0 := d.bk.Current() - 3
	old := d.putAt(t, p0, 3)
	young := d.putAt(t, p0+2, 1)
	if err := d.store.SetHighestPeriod(context.Background(), p0+2); err != nil {
		t.Fatal(err)
	}
	return d, old, young
}

func TestFractionGuard(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d, old, young := fractionFixture(t, o)
			p := d.purger(t, PurgerConfig{})
			for _, opt := range []RunOptions{{}, {DryRun: true}, {ConfirmJump: true}} {
				rep, err := p.Run(context.Background(), opt)
				refusal(t, err, GuardFraction, ErrTooMany)
				if rep.Expired != 3 || rep.Total != 4 || rep.Live != 1 || rep.Deleted != 0 || rep.Refused != GuardFraction {
					t.Fatalf("refused run's report: %+v", rep)
				}
				if !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "3 of 4") {
					t.Errorf("refusal does not say how many or how to override: %v", err)
				}
			}
			if n := d.present(t, old) + d.present(t, young); n != 4 {
				t.Fatalf("%d of 4 blocks left after refused purges", n)
			}
			rep := run(t, p, RunOptions{Force: true})
			if rep.Deleted != 3 || rep.Expired != 3 || rep.Total != 4 {
				t.Fatalf("forced purge: %+v", rep)
			}
			if d.present(t, old) != 0 || d.present(t, young) != 1 {
				t.Fatal("the forced purge deleted the wrong blocks")
			}
			if c := p.Counters(); c.RefusedFraction != 3 || c.Deleted != 3 || c.Runs != 1 {
				t.Errorf("counters = %+v, want 3 fraction refusals, 1 run, 3 deleted", c)
			}
		})
	}
}

// The allowed fraction is configurable, and a purge of exactly that
// share passes.
func TestFractionGuardThreshold(t *testing.T) {
	o := stores()[0]
	d, _, _ := fractionFixture(t, o)
	if rep := run(t, d.purger(t, PurgerConfig{MaxFraction: 0.75}), RunOptions{}); rep.Deleted != 3 {
		t.Fatalf("3 of 4 with MaxFraction 0.75: %+v", rep)
	}
	for _, f := range []float64{-0.1, 1.5} {
		if _, err := NewPurger(PurgerConfig{Store: d.store, Bucketer: d.bk, MaxFraction: f}); err == nil {
			t.Errorf("MaxFraction %v accepted", f)
		}
	}
}

// A dry run counts what a purge would delete, and changes nothing: no
// block, and not the recorded period.
func TestDryRunChangesNothing(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(3*testPeriod+30*time.Minute))
			cur := d.bk.Current()
			old := d.putAt(t, cur-3, 2)
			young := d.put(t, 5)
			if err := d.store.SetHighestPeriod(context.Background(), cur-1); err != nil {
				t.Fatal(err)
			}
			p := d.purger(t, PurgerConfig{})
			rep := run(t, p, RunOptions{DryRun: true})
			if !rep.DryRun || rep.Expired != 2 || rep.Total != 7 || rep.Live != 5 || rep.Deleted != 0 {
				t.Fatalf("dry run: %+v", rep)
			}
			if d.present(t, old) != 2 || d.present(t, young) != 5 {
				t.Fatal("a dry run deleted blocks")
			}
			if h := d.highest(t); h != cur-1 {
				t.Fatalf("a dry run recorded period %d", h)
			}
			if rep := run(t, p, RunOptions{}); rep.Deleted != 2 {
				t.Fatalf("real run after the dry run: %+v", rep)
			}
			if c := p.Counters(); c.DryRuns != 1 || c.Runs != 2 || c.Deleted != 2 {
				t.Errorf("counters = %+v", c)
			}
		})
	}
}

// A store that cannot say which key it was created with cannot be
// guarded, so no purger is made for it.
func TestNewPurgerNeedsStoreParams(t *testing.T) {
	d := newDeployment(t, stores()[0], t0)
	type bare struct{ blobstore.Store } // hides Params
	if _, err := NewPurger(PurgerConfig{Store: bare{d.store}, Bucketer: d.bk}); err == nil {
		t.Fatal("a store without Params was accepted")
	}
}
