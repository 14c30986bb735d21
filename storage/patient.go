package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
)

// Patient wraps a driver so that no call waits forever and passing faults pass:
// every call (list, stat, read, delete, walk) gets a deadline per attempt, and a
// call that times out or fails in a way that may pass (5xx, 429, a reset
// connection) is tried again after a backoff with jitter, a bounded number of
// times. When the tries run out, the error names the call and the path. Errors
// that will not pass (not found, 4xx) come back at once.
//
// Object stores need it: distribution's drivers set no deadline of their own, and
// one request that is never answered stops a run for good.
type Patient struct {
	driver.StorageDriver
	o       PatientOptions
	retries atomic.Int64
}

// PatientOptions tune Patient.
type PatientOptions struct {
	// Timeout bounds one attempt of a call; for a read or a walk, the time without
	// progress (default 30s).
	Timeout time.Duration
	// Tries bounds the attempts of a call (default 5).
	Tries int
	// Backoff is the wait before the second attempt, doubled for each one after,
	// with ±50% jitter, up to 10s (default 200ms).
	Backoff time.Duration
	// OnRetry, when set, hears of each failed attempt that will be tried again.
	OnRetry func(op, path string, attempt int, err error)
}

var _ driver.StorageDriver = (*Patient)(nil)

// NewPatient wraps d.
func NewPatient(d driver.StorageDriver, o PatientOptions) *Patient {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Tries <= 0 {
		o.Tries = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	return &Patient{StorageDriver: d, o: o}
}

// Retries returns how many attempts were tried again so far.
func (p *Patient) Retries() int64 { return p.retries.Load() }

// ErrGaveUp is wrapped when a call failed on every attempt.
var ErrGaveUp = errors.New("storage did not answer")

// do runs fn with a deadline per attempt, trying again while the failure may pass.
func (p *Patient) do(ctx context.Context, op, path string, fn func(ctx context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, pt, cancel := withPatience(ctx, p.o.Timeout)
		err = fn(actx)
		timedOut := pt.end() && ctx.Err() == nil
		cancel(nil)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if timedOut {
			err = fmt.Errorf("no answer within %v: %w", p.o.Timeout, err)
		} else if !mayPass(err) {
			return err
		}
		if attempt >= p.o.Tries {
			return fmt.Errorf("%s %s: %w after %d attempts: %v", op, path, ErrGaveUp, attempt, err)
		}
		p.retries.Add(1)
		if p.o.OnRetry != nil {
			p.o.OnRetry(op, path, attempt, err)
		}
		if werr := sleep(ctx, p.backoff(attempt)); werr != nil {
			return werr
		}
	}
}

func (p *Patient) backoff(attempt int) time.Duration {
	d := p.o.Backoff << (attempt - 1)
	d = min(d, 10*time.Second)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// driverCause returns the cause distribution's base wrapper hides in Error.Detail,
// without Unwrap; err itself otherwise.
func driverCause(err error) error {
	var de driver.Error
	if errors.As(err, &de) && de.Detail != nil {
		return de.Detail
	}
	return err
}

// mayPass reports whether a failure may pass if the call is made again.
func mayPass(err error) bool {
	if err == nil {
		return false
	}
	var (
		nf  driver.PathNotFoundError
		ip  driver.InvalidPathError
		io_ driver.InvalidOffsetError
		um  driver.ErrUnsupportedMethod
	)
	if errors.As(err, &nf) || errors.As(err, &ip) || errors.As(err, &io_) || errors.As(err, &um) ||
		errors.Is(err, ErrSymlink) || errors.Is(err, ErrNotDir) || errors.Is(err, context.Canceled) {
		return false
	}
	err = driverCause(err)
	var sc interface{ StatusCode() int } // aws-sdk-go's RequestFailure
	if errors.As(err, &sc) {
		code := sc.StatusCode()
		return code >= 500 || code == 429 || code == 408
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	s := err.Error()
	for _, passing := range []string{"connection reset", "broken pipe", "EOF", "timeout", "SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "send request failed", "connection refused"} {
		if strings.Contains(s, passing) {
			return true
		}
	}
	return false
}

// List implements driver.StorageDriver.
func (p *Patient) List(ctx context.Context, path string) ([]string, error) {
	var out []string
	err := p.do(ctx, "list", path, func(ctx context.Context) (err error) {
		out, err = p.StorageDriver.List(ctx, path)
		return err
	})
	return out, err
}

// Stat implements driver.StorageDriver.
func (p *Patient) Stat(ctx context.Context, path string) (driver.FileInfo, error) {
	var fi driver.FileInfo
	err := p.do(ctx, "stat", path, func(ctx context.Context) (err error) {
		fi, err = p.StorageDriver.Stat(ctx, path)
		return err
	})
	return fi, err
}

// GetContent implements driver.StorageDriver.
func (p *Patient) GetContent(ctx context.Context, path string) ([]byte, error) {
	var b []byte
	err := p.do(ctx, "read", path, func(ctx context.Context) (err error) {
		b, err = p.StorageDriver.GetContent(ctx, path)
		return err
	})
	return b, err
}

// Delete implements driver.StorageDriver. Deleting again what a timed-out attempt
// deleted finds nothing: that is success, since the attempt that did it may have
// been the one whose answer was lost.
func (p *Patient) Delete(ctx context.Context, path string) error {
	first := true
	return p.do(ctx, "delete", path, func(ctx context.Context) error {
		err := p.StorageDriver.Delete(ctx, path)
		var nf driver.PathNotFoundError
		if !first && errors.As(err, &nf) {
			return nil
		}
		first = false
		return err
	})
}

// Reader implements driver.StorageDriver. The reader it returns gives up on a read
// that makes no progress for the timeout, and opens the file again at the offset
// reached when a read fails in a way that may pass.
func (p *Patient) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	r := &patientReader{p: p, ctx: ctx, path: path, off: offset}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

type patientReader struct {
	p      *Patient
	ctx    context.Context
	path   string
	off    int64
	rc     io.ReadCloser
	cancel context.CancelFunc
	fails  int
}

func (r *patientReader) open() error {
	return r.p.do(r.ctx, "read", r.path, func(ctx context.Context) error {
		// The body is read with rctx, which outlives the attempt; opening it is
		// still timed by the attempt's clock.
		rctx, cancel := context.WithCancelCause(r.ctx)
		octx := carryPatience(rctx, ctx)
		rc, err := openWithin(ctx, func() (io.ReadCloser, error) { return r.p.StorageDriver.Reader(octx, r.path, r.off) })
		if err != nil {
			cancel(context.Cause(ctx)) // errNoAnswer when the clock ran out
			return err
		}
		r.rc, r.cancel = rc, func() { cancel(nil) }
		return nil
	})
}

// openWithin waits for open until ctx is done; a late answer is closed.
func openWithin(ctx context.Context, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	type result struct {
		rc  io.ReadCloser
		err error
	}
	ch := make(chan result, 1)
	go func() { rc, err := open(); ch <- result{rc, err} }()
	select {
	case res := <-ch:
		return res.rc, res.err
	case <-ctx.Done():
		go func() {
			if res := <-ch; res.rc != nil {
				res.rc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (r *patientReader) Read(b []byte) (int, error) {
	for {
		n, err := r.readWithin(b)
		r.off += int64(n)
		if n > 0 || err == nil || err == io.EOF {
			return n, err
		}
		if r.ctx.Err() != nil {
			return 0, r.ctx.Err()
		}
		if !mayPass(err) && !errors.Is(err, errStalled) {
			return 0, err
		}
		r.fails++
		if r.fails >= r.p.o.Tries {
			return 0, fmt.Errorf("read %s at %d: %w after %d attempts: %v", r.path, r.off, ErrGaveUp, r.fails, err)
		}
		r.p.retries.Add(1)
		if r.p.o.OnRetry != nil {
			r.p.o.OnRetry("read", r.path, r.fails, err)
		}
		r.closeBody()
		if err := sleep(r.ctx, r.p.backoff(r.fails)); err != nil {
			return 0, err
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
}

var errStalled = errors.New("no progress")

// readWithin reads, giving up when nothing comes for the timeout.
func (r *patientReader) readWithin(b []byte) (int, error) {
	var once sync.Once
	stalled := false
	t := time.AfterFunc(r.p.o.Timeout, func() { once.Do(func() { stalled = true; r.cancel() }) })
	n, err := r.rc.Read(b)
	if !t.Stop() {
		once.Do(func() {}) // the timer fired: wait for it to have set stalled
	}
	if stalled && err != nil && err != io.EOF {
		return n, fmt.Errorf("%w for %v: %v", errStalled, r.p.o.Timeout, err)
	}
	return n, err
}

func (r *patientReader) closeBody() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
}

func (r *patientReader) Close() error {
	var err error
	if r.rc != nil {
		err = r.rc.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
	return err
}

// Walk implements driver.StorageDriver. A walk that stalls for the timeout, or
// fails in a way that may pass, is started again: before anything was found, from
// the beginning; after, only on drivers whose walks run in key order and resume
// after a hint (s3aws), from the last file found, whose successors are all that is
// passed on. Elsewhere a walk that fails midway fails.
func (p *Patient) Walk(ctx context.Context, path string, fn driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	var last string // the last file passed on
	resumable := p.Name() == "s3aws"
	var err error
	for attempt := 1; ; attempt++ {
		err = p.walkOnce(ctx, path, &last, fn, opts)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var stop walkCallerError
		if errors.As(err, &stop) {
			return stop.err // the caller's own error: not the storage's
		}
		if !errors.Is(err, errStalled) && !mayPass(err) {
			return err
		}
		if last != "" && !resumable {
			return fmt.Errorf("walk %s: %w after finding part of it (%s driver walks cannot resume): %v", path, ErrGaveUp, p.Name(), err)
		}
		if attempt >= p.o.Tries {
			return fmt.Errorf("walk %s: %w after %d attempts: %v", path, ErrGaveUp, attempt, err)
		}
		p.retries.Add(1)
		if p.o.OnRetry != nil {
			p.o.OnRetry("walk", path, attempt, err)
		}
		if werr := sleep(ctx, p.backoff(attempt)); werr != nil {
			return werr
		}
	}
}

type walkCallerError struct{ err error }

func (e walkCallerError) Error() string { return e.err.Error() }

// walkOnce walks once, after *last when it is set, cancelling when no entry comes
// for the timeout; *last becomes the last file passed on.
func (p *Patient) walkOnce(ctx context.Context, path string, last *string, fn driver.WalkFn, opts []func(*driver.WalkOptions)) error {
	wctx, pt, cancel := withPatience(ctx, p.o.Timeout)
	defer cancel(nil)
	after := *last
	if after != "" {
		opts = append(append([]func(*driver.WalkOptions){}, opts...), driver.WithStartAfterHint(after))
	}
	err := p.StorageDriver.Walk(wctx, path, func(fi driver.FileInfo) error {
		// The store answered; the time fn takes is not the store's.
		pt.pause()
		defer pt.restart()
		if after != "" && fi.Path() <= after {
			return nil // passed on before the walk was started again
		}
		if err := fn(fi); err != nil {
			if errors.Is(err, driver.ErrSkipDir) {
				return err
			}
			return walkCallerError{err}
		}
		if !fi.IsDir() {
			*last = fi.Path()
		}
		return nil
	}, opts...)
	if pt.end() && err != nil {
		return fmt.Errorf("%w for %v: %v", errStalled, p.o.Timeout, err)
	}
	return err
}
