package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// slowStore answers after a delay and, with more than capacity calls in flight,
// throttles as S3 does (503 SlowDown).
type slowStore struct {
	driver.StorageDriver
	delay     time.Duration
	capacity  int64
	inflight  atomic.Int64
	peak      atomic.Int64
	throttled atomic.Int64
}

type statusError struct{ code int }

func (e statusError) Error() string {
	return fmt.Sprintf("SlowDown: please reduce your request rate (%d)", e.code)
}
func (e statusError) StatusCode() int { return e.code }

func (s *slowStore) GetContent(ctx context.Context, p string) ([]byte, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		old := s.peak.Load()
		if n <= old || s.peak.CompareAndSwap(old, n) {
			break
		}
	}
	time.Sleep(s.delay)
	if n > s.capacity {
		s.throttled.Add(1)
		return nil, statusError{503}
	}
	return s.StorageDriver.GetContent(ctx, p)
}

// A store that throttles above 24 calls in flight: the limit comes down from 64
// and the calls get through (with Patient's retries), most without being throttled;
// the limit never goes above its maximum, and waiters that give up leave no slot
// taken.
func TestAdaptiveBacksOffOnThrottling(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	if err := mem.PutContent(ctx, "/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	store := &slowStore{StorageDriver: mem, delay: 2 * time.Millisecond, capacity: 24}
	var cuts atomic.Int64
	a := storage.NewAdaptive(store, storage.AdaptiveOptions{Start: 64, Min: 4, Max: 128, Cooling: 20 * time.Millisecond,
		OnCut: func(int, error) { cuts.Add(1) }})
	p := storage.NewPatient(a, storage.PatientOptions{Backoff: time.Millisecond, Tries: 20})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(256)
	const calls = 4000
	for range calls {
		g.Go(func() error {
			_, err := p.GetContent(gctx, "/x")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("calls failed: %v", err)
	}
	if cuts.Load() == 0 || a.Limit() > 64 {
		t.Errorf("limit %d after %d cuts: the store throttles above 24 in flight", a.Limit(), cuts.Load())
	}
	if th := store.throttled.Load(); th > calls/4 {
		t.Errorf("%d of %d calls throttled: the limit did not come down", th, calls)
	}
	if a.Peak() > 128 || store.peak.Load() > 128 {
		t.Errorf("peak in flight %d (store saw %d), above the maximum 128", a.Peak(), store.peak.Load())
	}
	t.Logf("limit %d, %d cuts, %d of %d throttled, peak %d", a.Limit(), cuts.Load(), store.throttled.Load(), calls, store.peak.Load())

	// Waiters that give up give nothing away: afterwards all slots are free.
	a2 := storage.NewAdaptive(store, storage.AdaptiveOptions{Start: 2, Max: 2})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Duration(i%5)*time.Millisecond)
			defer cancel()
			a2.GetContent(cctx, "/x")
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() {
		for range 3 {
			a2.GetContent(ctx, "/x")
		}
		rc, err := a2.Reader(ctx, "/x", 0)
		if err == nil {
			io.ReadAll(rc)
			rc.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("slots leaked: a call waits forever after cancelled waiters")
	}
}

// Without throttling the limit grows from its start to the maximum.
func TestAdaptiveGrows(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	mem.PutContent(ctx, "/x", []byte("x"))
	a := storage.NewAdaptive(mem, storage.AdaptiveOptions{Start: 4, Max: 32})
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := a.GetContent(ctx, "/x"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if a.Limit() != 32 {
		t.Errorf("limit %d after 6400 calls without an error, want 32", a.Limit())
	}
	// Not found says nothing of the store's load.
	if _, err := a.GetContent(ctx, "/missing"); !errors.As(err, new(driver.PathNotFoundError)) || a.Limit() != 32 {
		t.Errorf("not found: %v, limit %d", err, a.Limit())
	}
}

// Against distribution's s3 driver and an S3 server that answers 503 SlowDown to
// every GET for a while: the SDK tries each request 4 times with its own backoff,
// then the error reaches regsweep, which cuts the limit; Patient tries again, and
// the reads succeed once the store recovers.
func TestAdaptiveS3SlowDown(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/p")
	const files = 10
	for i := range files {
		if err := drv.PutContent(ctx, fmt.Sprintf("/f%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var n atomic.Int64
	s3.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || n.Add(1) > 4*files {
			return false
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return true
	})
	a := storage.NewAdaptive(drv, storage.AdaptiveOptions{Start: 64, Max: 64, Cooling: time.Millisecond})
	p := storage.NewPatient(a, storage.PatientOptions{Backoff: time.Millisecond, Tries: 10})
	g, gctx := errgroup.WithContext(ctx)
	for i := range files {
		g.Go(func() error {
			b, err := p.GetContent(gctx, fmt.Sprintf("/f%d", i))
			if err == nil && string(b) != "x" {
				err = fmt.Errorf("read %q", b)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("reads under SlowDown: %v", err)
	}
	if a.Cuts() == 0 || a.Limit() >= 64 {
		t.Errorf("limit %d after %d cuts: S3 said SlowDown", a.Limit(), a.Cuts())
	}
}

// The defaults: gentle and fixed on a local disk; wide and adaptive on an object
// store; --workers caps both.
func TestConcurrencyDefaults(t *testing.T) {
	for _, c := range []struct {
		name               string
		cap, workers       int
		adaptive           bool
		start, least, most int
	}{
		{"filesystem", 0, storage.LocalWorkers, false, 0, 0, 0},
		{"filesystem", 3, 3, false, 0, 0, 0},
		{"s3aws", 0, storage.ObjectStoreMax, true, storage.ObjectStoreStart, 4, storage.ObjectStoreMax},
		{"gcs", 8, 8, true, 8, 4, 8},
		{"azure", 1, 1, true, 1, 1, 1},
	} {
		n, o := storage.Concurrency(c.name, c.cap)
		if n != c.workers || (o != nil) != c.adaptive {
			t.Errorf("%s --workers %d: %d workers, adaptive %v", c.name, c.cap, n, o != nil)
			continue
		}
		if o != nil && (o.Start != c.start || o.Min != c.least || o.Max != c.most) {
			t.Errorf("%s --workers %d: %+v, want start %d, min %d, max %d", c.name, c.cap, *o, c.start, c.least, c.most)
		}
	}
}
