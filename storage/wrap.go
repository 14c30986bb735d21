package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
)

// Counting wraps a driver and counts its calls by method. Walk is replayed through
// the wrapper's List and Stat (distribution's fallback walk, as the filesystem and
// inmemory drivers walk anyway), so every directory listed is counted. Drivers with a
// native recursive listing (S3) are better counted at the HTTP layer.
type Counting struct {
	driver.StorageDriver
	calls [nOps]atomic.Int64
}

// Op is a driver method counted by Counting.
type Op int

// Counted methods.
const (
	OpList Op = iota
	OpStat
	OpGetContent
	OpReader
	OpDelete
	OpPutContent
	OpWalk
	nOps
)

var opNames = [nOps]string{"list", "stat", "get", "reader", "delete", "put", "walk"}

func (o Op) String() string { return opNames[o] }

var _ driver.StorageDriver = (*Counting)(nil)

// NewCounting wraps d.
func NewCounting(d driver.StorageDriver) *Counting { return &Counting{StorageDriver: d} }

// Count returns the calls of one method so far.
func (c *Counting) Count(o Op) int64 { return c.calls[o].Load() }

// Total returns all calls so far.
func (c *Counting) Total() int64 {
	var n int64
	for i := range c.calls {
		n += c.calls[i].Load()
	}
	return n
}

// Counts returns calls by method name.
func (c *Counting) Counts() map[string]int64 {
	m := map[string]int64{}
	for i := range c.calls {
		if n := c.calls[i].Load(); n > 0 {
			m[opNames[i]] = n
		}
	}
	return m
}

// List implements driver.StorageDriver.
func (c *Counting) List(ctx context.Context, p string) ([]string, error) {
	c.calls[OpList].Add(1)
	return c.StorageDriver.List(ctx, p)
}

// Stat implements driver.StorageDriver.
func (c *Counting) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	c.calls[OpStat].Add(1)
	return c.StorageDriver.Stat(ctx, p)
}

// GetContent implements driver.StorageDriver.
func (c *Counting) GetContent(ctx context.Context, p string) ([]byte, error) {
	c.calls[OpGetContent].Add(1)
	return c.StorageDriver.GetContent(ctx, p)
}

// Reader implements driver.StorageDriver.
func (c *Counting) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	c.calls[OpReader].Add(1)
	return c.StorageDriver.Reader(ctx, p, off)
}

// Delete implements driver.StorageDriver.
func (c *Counting) Delete(ctx context.Context, p string) error {
	c.calls[OpDelete].Add(1)
	return c.StorageDriver.Delete(ctx, p)
}

// PutContent implements driver.StorageDriver.
func (c *Counting) PutContent(ctx context.Context, p string, b []byte) error {
	c.calls[OpPutContent].Add(1)
	return c.StorageDriver.PutContent(ctx, p, b)
}

// Walk implements driver.StorageDriver through List and Stat, so they are counted.
func (c *Counting) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	c.calls[OpWalk].Add(1)
	return driver.WalkFallback(ctx, c, p, f, opts...)
}

// Latency wraps a driver and sleeps before every call, to model object storage on a
// local driver. Walk goes through the wrapper's List, so each listing pays too.
type Latency struct {
	driver.StorageDriver
	delay time.Duration
}

var _ driver.StorageDriver = (*Latency)(nil)

// NewLatency wraps d with a delay per call.
func NewLatency(d driver.StorageDriver, delay time.Duration) *Latency {
	return &Latency{StorageDriver: d, delay: delay}
}

func (l *Latency) wait(ctx context.Context) error { return sleep(ctx, l.delay) }

// List implements driver.StorageDriver.
func (l *Latency) List(ctx context.Context, p string) ([]string, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.List(ctx, p)
}

// Stat implements driver.StorageDriver.
func (l *Latency) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.Stat(ctx, p)
}

// GetContent implements driver.StorageDriver.
func (l *Latency) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.GetContent(ctx, p)
}

// Reader implements driver.StorageDriver.
func (l *Latency) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.Reader(ctx, p, off)
}

// Delete implements driver.StorageDriver.
func (l *Latency) Delete(ctx context.Context, p string) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	return l.StorageDriver.Delete(ctx, p)
}

// Walk implements driver.StorageDriver through List and Stat, so they pay the delay.
func (l *Latency) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, l, p, f, opts...)
}

// Faulty wraps a driver and makes calls fail, for tests: with the probabilities of
// FaultRates, decided by a seeded source, a call returns an error (one that may pass,
// as a reset connection), a timeout, or, for List, an empty page in place of the
// entries (once per path: a listing that misses things for a moment, as an
// eventually consistent store's does). Deletes may fail after deleting, as when the
// answer is lost.
type Faulty struct {
	driver.StorageDriver
	rates   FaultRates
	seed    uint64
	mu      sync.Mutex
	calls   map[string]int // per call and path: how many so far
	emptied map[string]bool
	n       atomic.Int64
}

// FaultRates are the probabilities of each fault, per call.
type FaultRates struct {
	Error, Timeout, EmptyPage float64
	// Reads and Deletes say which calls errors and timeouts strike: list, stat and
	// read, and delete.
	Reads, Deletes bool
}

// ErrInjected is wrapped by every error Faulty makes.
var ErrInjected = errors.New("injected fault")

var _ driver.StorageDriver = (*Faulty)(nil)

// NewFaulty wraps d. Whether a call fails depends on the seed, the call, its path
// and how many times it was made before, not on the order of concurrent calls: a
// seed's faults are the same on every run.
func NewFaulty(d driver.StorageDriver, seed uint64, r FaultRates) *Faulty {
	return &Faulty{StorageDriver: d, rates: r, seed: seed, calls: map[string]int{}, emptied: map[string]bool{}}
}

// Emptied returns the paths whose listing came back empty.
func (f *Faulty) Emptied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.emptied))
	for p := range f.emptied {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Injected returns how many faults were made.
func (f *Faulty) Injected() int64 { return f.n.Load() }

// roll draws the n-th number for what on p, in [0, 1).
func (f *Faulty) roll(what, p string) float64 {
	f.mu.Lock()
	k := what + "\x00" + p
	n := f.calls[k]
	f.calls[k]++
	f.mu.Unlock()
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%d", f.seed, k, n)
	// FNV's high bits hardly change with the last byte: mix (murmur3's finalizer).
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}

// fault returns the error to give in place of op on p, or nil.
func (f *Faulty) fault(op, p string) error {
	r := f.roll(op, p)
	switch {
	case r < f.rates.Error:
		f.n.Add(1)
		return fmt.Errorf("%s %s: %w: connection reset by peer", op, p, ErrInjected)
	case r < f.rates.Error+f.rates.Timeout:
		f.n.Add(1)
		return fmt.Errorf("%s %s: %w: %w", op, p, ErrInjected, context.DeadlineExceeded)
	}
	return nil
}

// readFault is fault for list, stat and read.
func (f *Faulty) readFault(op, p string) error {
	if !f.rates.Reads {
		return nil
	}
	return f.fault(op, p)
}

// List implements driver.StorageDriver.
func (f *Faulty) List(ctx context.Context, p string) ([]string, error) {
	if err := f.readFault("list", p); err != nil {
		return nil, err
	}
	l, err := f.StorageDriver.List(ctx, p)
	if err == nil && len(l) > 0 && f.roll("empty", p) < f.rates.EmptyPage && f.empty(p) {
		f.n.Add(1)
		return []string{}, nil
	}
	return l, err
}

// empty reports whether p's listing may come back empty: once per area of the tree,
// so that what one listing misses, the next one of the area sees (a miss of the
// moment, not a store that hides a subtree for good).
func (f *Faulty) empty(p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for q := range f.emptied {
		if q == p || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") {
			return false
		}
	}
	f.emptied[p] = true
	return true
}

// Stat implements driver.StorageDriver.
func (f *Faulty) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := f.readFault("stat", p); err != nil {
		return nil, err
	}
	return f.StorageDriver.Stat(ctx, p)
}

// GetContent implements driver.StorageDriver.
func (f *Faulty) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := f.readFault("read", p); err != nil {
		return nil, err
	}
	return f.StorageDriver.GetContent(ctx, p)
}

// Reader implements driver.StorageDriver.
func (f *Faulty) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := f.readFault("read", p); err != nil {
		return nil, err
	}
	return f.StorageDriver.Reader(ctx, p, off)
}

// Delete implements driver.StorageDriver: a fault comes before the delete or, half
// the time, after it.
func (f *Faulty) Delete(ctx context.Context, p string) error {
	if !f.rates.Deletes {
		return f.StorageDriver.Delete(ctx, p)
	}
	err := f.fault("delete", p)
	if err == nil {
		return f.StorageDriver.Delete(ctx, p)
	}
	if f.roll("after", p) < 0.5 {
		if derr := f.StorageDriver.Delete(ctx, p); derr != nil {
			return derr
		}
	}
	return err
}

// Walk implements driver.StorageDriver through the wrapper's List and Stat.
func (f *Faulty) Walk(ctx context.Context, p string, fn driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, f, p, fn, opts...)
}
