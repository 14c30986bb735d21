package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
)

// Adaptive bounds the calls in flight to an object store by a limit that adapts,
// as TCP's congestion window does: it starts wide (an object store's cost is its
// latency, and many requests in flight hide it), grows by one after a limit's worth
// of calls that succeed, and halves when the store throttles (S3 503 SlowDown, 429)
// or fails in a way that may pass; at most once per cooling period, so that the
// failures of the requests already in flight count once. It never goes above Max
// (--workers) nor below Min.
type Adaptive struct {
	driver.StorageDriver
	o AdaptiveOptions

	mu       sync.Mutex
	limit    int
	inflight int
	good     int // calls that succeeded since the limit last changed
	lastCut  time.Time
	waiters  []chan struct{}

	cuts atomic.Int64
	peak atomic.Int64
}

// AdaptiveOptions tune Adaptive.
type AdaptiveOptions struct {
	Start, Min, Max int
	// Cooling is the least time between two cuts (default 1s).
	Cooling time.Duration
	// OnCut, when set, hears of each cut: the new limit and the error that caused it.
	OnCut func(limit int, err error)
}

var _ driver.StorageDriver = (*Adaptive)(nil)

// NewAdaptive wraps d.
func NewAdaptive(d driver.StorageDriver, o AdaptiveOptions) *Adaptive {
	o.Max = max(o.Max, 1)
	o.Min = min(max(o.Min, 1), o.Max)
	o.Start = min(max(o.Start, o.Min), o.Max)
	if o.Cooling <= 0 {
		o.Cooling = time.Second
	}
	return &Adaptive{StorageDriver: d, o: o, limit: o.Start}
}

// Limit returns the current limit.
func (a *Adaptive) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit
}

// Cuts returns how many times the limit was cut; Peak the most calls in flight.
func (a *Adaptive) Cuts() int64 { return a.cuts.Load() }

// Peak returns the most calls that were in flight at once.
func (a *Adaptive) Peak() int64 { return a.peak.Load() }

func (a *Adaptive) acquire(ctx context.Context) error {
	a.mu.Lock()
	if a.inflight < a.limit && len(a.waiters) == 0 {
		a.take()
		a.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	a.waiters = append(a.waiters, ch)
	a.mu.Unlock()
	defer waiting(ctx)() // a wait for a slot is not the store's time
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, w := range a.waiters {
			if w == ch {
				a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Granted meanwhile: give the slot back.
		a.inflight--
		a.grant()
		return ctx.Err()
	}
}

// take counts a call in flight; with a.mu held.
func (a *Adaptive) take() {
	a.inflight++
	if n := int64(a.inflight); n > a.peak.Load() {
		a.peak.Store(n)
	}
}

// grant lets waiters in while there is room; with a.mu held.
func (a *Adaptive) grant() {
	for len(a.waiters) > 0 && a.inflight < a.limit {
		ch := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.take()
		close(ch)
	}
}

func (a *Adaptive) release(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	switch {
	case err == nil || !mayPass(err) && !throttled(err):
		// Success, or an answer (not found) that says nothing of the store's load.
		if a.good++; a.good >= a.limit && a.limit < a.o.Max {
			a.limit++
			a.good = 0
		}
	case time.Since(a.lastCut) >= a.o.Cooling:
		a.limit = max(a.o.Min, a.limit/2)
		a.good, a.lastCut = 0, time.Now()
		a.cuts.Add(1)
		if a.o.OnCut != nil {
			a.o.OnCut(a.limit, err)
		}
	}
	a.grant()
}

// throttled reports whether err is an object store asking the client to slow down.
func throttled(err error) bool {
	if err == nil {
		return false
	}
	err = driverCause(err)
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && (sc.StatusCode() == 429 || sc.StatusCode() == 503) {
		return true
	}
	s := err.Error()
	for _, slow := range []string{"SlowDown", "TooManyRequests", "RequestLimitExceeded", "Throttling", "rateLimitExceeded", "ServerBusy", "503 Service Unavailable"} {
		if strings.Contains(s, slow) {
			return true
		}
	}
	return false
}

func (a *Adaptive) call(ctx context.Context, fn func() error) error {
	if err := a.acquire(ctx); err != nil {
		return err
	}
	err := fn()
	a.release(outcome(ctx, err))
	return err
}

// outcome is what a call's failure says of the store: when the call was cancelled,
// the cause (a Patient's errNoAnswer says the store did not answer; a caller's
// cancel says nothing).
func outcome(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		if c := context.Cause(ctx); c != nil {
			return c
		}
	}
	return err
}

// GetContent implements driver.StorageDriver.
func (a *Adaptive) GetContent(ctx context.Context, path string) (b []byte, err error) {
	err = a.call(ctx, func() error { b, err = a.StorageDriver.GetContent(ctx, path); return err })
	return b, err
}

// List implements driver.StorageDriver.
func (a *Adaptive) List(ctx context.Context, path string) (l []string, err error) {
	err = a.call(ctx, func() error { l, err = a.StorageDriver.List(ctx, path); return err })
	return l, err
}

// Stat implements driver.StorageDriver.
func (a *Adaptive) Stat(ctx context.Context, path string) (fi driver.FileInfo, err error) {
	err = a.call(ctx, func() error { fi, err = a.StorageDriver.Stat(ctx, path); return err })
	return fi, err
}

// Delete implements driver.StorageDriver.
func (a *Adaptive) Delete(ctx context.Context, path string) error {
	return a.call(ctx, func() error { return a.StorageDriver.Delete(ctx, path) })
}

// Walk implements driver.StorageDriver: one slot for the whole listing, whose pages
// follow one another.
func (a *Adaptive) Walk(ctx context.Context, path string, fn driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return a.call(ctx, func() error { return a.StorageDriver.Walk(ctx, path, fn, opts...) })
}

// Reader implements driver.StorageDriver: the slot is held until the reader is
// closed, for the body is read in the meantime.
func (a *Adaptive) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if err := a.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := a.StorageDriver.Reader(ctx, path, offset)
	if err != nil {
		a.release(outcome(ctx, err))
		return nil, err
	}
	return &adaptiveReader{ReadCloser: rc, a: a}, nil
}

type adaptiveReader struct {
	io.ReadCloser
	a    *Adaptive
	err  error
	once sync.Once
}

func (r *adaptiveReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *adaptiveReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() { r.a.release(r.err) })
	return err
}

// Concurrency defaults. Local disks get a fixed, gentle number of workers; object
// stores start wide and adapt (Adaptive), up to ObjectStoreMax or --workers.
const (
	LocalWorkers     = 16
	ObjectStoreStart = 256
	ObjectStoreMax   = 512
)

// Concurrency returns how many workers to run on the driver named name, and for an
// object store the options of its Adaptive wrapper (nil for the filesystem). cap,
// when more than 0, is --workers: the most calls in flight.
func Concurrency(name string, cap int) (int, *AdaptiveOptions) {
	if name == "filesystem" || name == "inmemory" {
		if cap > 0 {
			return cap, nil
		}
		return LocalWorkers, nil
	}
	most := ObjectStoreMax
	if cap > 0 {
		most = cap
	}
	return most, &AdaptiveOptions{Start: min(ObjectStoreStart, most), Min: min(4, most), Max: most}
}
