package storage_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// A store that answers every call in 120 ms, behind a limit of one call in flight:
// calls queued for the slot wait far longer than the 300 ms timeout, and none of
// them may time out for it, for the store answers each one in time. (Counting the
// queue made healthy calls behind a few hung ones give up on a store that
// answered.)
func TestPatientTimesTheStoreNotTheQueue(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	files := []string{"/a/1", "/a/2", "/b/3"}
	for _, f := range files {
		if err := mem.PutContent(ctx, f, []byte("content of "+f)); err != nil {
			t.Fatal(err)
		}
	}
	slow := storage.NewLatency(mem, 120*time.Millisecond)
	a := storage.NewAdaptive(slow, storage.AdaptiveOptions{Start: 1, Min: 1, Max: 1})
	p := storage.NewPatient(a, storage.PatientOptions{Timeout: 300 * time.Millisecond, Tries: 1})
	var g errgroup.Group
	for _, f := range files {
		g.Go(func() error {
			b, err := p.GetContent(ctx, f)
			if err == nil && string(b) != "content of "+f {
				err = fmt.Errorf("read %s: %q", f, b)
			}
			return err
		})
		g.Go(func() error {
			rc, err := p.Reader(ctx, f, 0)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil && string(b) != "content of "+f {
				err = fmt.Errorf("reader %s: %q", f, b)
			}
			return err
		})
		g.Go(func() error { _, err := p.Stat(ctx, f); return err })
	}
	g.Go(func() error { _, err := p.List(ctx, "/a"); return err })
	g.Go(func() error {
		var got []string
		err := p.Walk(ctx, "/", func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				got = append(got, fi.Path())
			}
			return nil
		})
		if err == nil && !slices.Equal(got, files) {
			err = fmt.Errorf("walk found %v, want %v", got, files)
		}
		return err
	})
	within(t, time.Minute, func() {
		if err := g.Wait(); err != nil {
			t.Errorf("a call queued for a slot timed out: %v", err)
		}
	})
	if p.Retries() != 0 {
		t.Errorf("%d calls retried; the store answered every one in time", p.Retries())
	}
}

// A walk whose caller takes longer over each entry than the timeout: the store is
// not stalled, and the walk is not cut off.
func TestPatientWalkTimesTheStoreNotTheCaller(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	files := []string{"/a/1", "/a/2", "/b/3"}
	for _, f := range files {
		if err := mem.PutContent(ctx, f, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// The latency makes the walk's listings heed a cancel, as a store's do.
	p := storage.NewPatient(storage.NewLatency(mem, time.Millisecond), storage.PatientOptions{Timeout: 100 * time.Millisecond, Tries: 1})
	var got []string
	err := p.Walk(ctx, "/", func(fi driver.FileInfo) error {
		time.Sleep(250 * time.Millisecond)
		if !fi.IsDir() {
			got = append(got, fi.Path())
		}
		return nil
	})
	if err != nil || !slices.Equal(got, files) {
		t.Errorf("walk with a slow caller: %v, %v; want %v", got, err, files)
	}
}

// A call the store never answers still times out with an adaptive limit below, and
// the timeout counts against the store: the limit is cut.
func TestPatientTimeoutCutsAdaptiveLimit(t *testing.T) {
	s3, drv := benchenv.StartS3(t, "/p")
	ctx := context.Background()
	if err := drv.PutContent(ctx, "/hung", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s3.SetFault(s3.Hang(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "hung") }))
	a := storage.NewAdaptive(drv, storage.AdaptiveOptions{Start: 8, Min: 1, Max: 8, Cooling: time.Millisecond})
	p := storage.NewPatient(a, storage.PatientOptions{Timeout: 100 * time.Millisecond, Tries: 2, Backoff: time.Millisecond})
	for _, call := range []func() error{
		func() error { _, err := p.GetContent(ctx, "/hung"); return err },
		func() error {
			rc, err := p.Reader(ctx, "/hung", 0)
			if err == nil {
				rc.Close()
			}
			return err
		},
	} {
		before := a.Cuts()
		var err error
		within(t, time.Minute, func() { err = call() })
		if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") {
			t.Errorf("a call never answered: %v, want a timeout", err)
		}
		if a.Cuts() == before {
			t.Errorf("the limit was not cut after a timeout (limit %d)", a.Limit())
		}
	}
}
