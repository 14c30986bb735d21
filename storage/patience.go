package storage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// patience is the clock of one attempt: it runs out when the store has not
// answered for the timeout. Only the store's time counts: a queue below (Adaptive)
// stops the clock while the attempt waits for a slot, and a walk stops it while
// the caller's function runs. Counting our own waits made a queue of healthy
// requests behind a few hung ones time out, each timeout cut the limit, and the
// longer queue timed out more: a run gave up on a store that answered.
type patience struct {
	d     time.Duration
	mu    sync.Mutex
	t     *time.Timer
	fired bool
}

type patienceKey struct{}

// errNoAnswer is the cause of an attempt cancelled by its clock. It wraps
// context.DeadlineExceeded, so an Adaptive below counts it as a failure that may
// pass (and cuts its limit) rather than as a caller's cancel.
var errNoAnswer = fmt.Errorf("no answer from storage: %w", context.DeadlineExceeded)

// withPatience starts a clock of d on a child of ctx; when it runs out, the child
// is cancelled with errNoAnswer as its cause.
func withPatience(ctx context.Context, d time.Duration) (context.Context, *patience, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	pt := &patience{d: d}
	pt.t = time.AfterFunc(d, func() {
		pt.mu.Lock()
		pt.fired = true
		pt.mu.Unlock()
		cancel(errNoAnswer)
	})
	return context.WithValue(ctx, patienceKey{}, pt), pt, cancel
}

// pause stops the clock.
func (pt *patience) pause() {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.t.Stop()
}

// restart gives the store the whole timeout again, from now.
func (pt *patience) restart() {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pt.fired {
		pt.t.Reset(pt.d)
	}
}

// end stops the clock and reports whether it ran out.
func (pt *patience) end() bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.t.Stop()
	return pt.fired
}

// waiting stops the clock of ctx's attempt, if it has one, while the caller waits
// for something other than the store; the func it returns starts it again.
func waiting(ctx context.Context) func() {
	pt, _ := ctx.Value(patienceKey{}).(*patience)
	if pt == nil {
		return func() {}
	}
	pt.pause()
	return pt.restart
}

// carryPatience gives to a context the clock of another: a call made with to is
// still timed by from's attempt.
func carryPatience(to, from context.Context) context.Context {
	if pt, ok := from.Value(patienceKey{}).(*patience); ok {
		return context.WithValue(to, patienceKey{}, pt)
	}
	return to
}
