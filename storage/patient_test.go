package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// s3Tree puts a few files in a fake S3 bucket and returns the server and the driver.
func s3Tree(t *testing.T) (*benchenv.S3, *storage.Patient, []string) {
	t.Helper()
	ctx := context.Background()
	s3, err := benchenv.NewS3("bucket")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.Close)
	drv, err := s3.Driver(ctx, "/root")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range []string{"/a/1", "/a/2", "/a/b/3", "/c/4", "/c/5", "/d"} {
		if err := drv.PutContent(ctx, f, []byte("content of "+f)); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return s3, storage.NewPatient(drv, storage.PatientOptions{Timeout: 300 * time.Millisecond, Tries: 4, Backoff: 10 * time.Millisecond}), files
}

// within fails the test if fn does not end in d: code that waits forever on a
// store must fail its test, not hang it.
func within(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still waiting after %v: a call waits forever", d)
	}
}

// One request in four is never answered: every call still succeeds, and a walk
// cut off midway resumes without passing anything on twice.
func TestPatientRidesOutHangs(t *testing.T) {
	s3, p, files := s3Tree(t)
	var n atomic.Int64
	s3.SetFault(s3.Hang(func(*http.Request) bool { return n.Add(1)%4 == 0 }))
	within(t, time.Minute, func() { ridesOut(t, p, files) })
	if p.Retries() == 0 {
		t.Error("no call was retried: the fault did not bite")
	}
}

func ridesOut(t *testing.T, p *storage.Patient, files []string) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		var got []string
		err := p.Walk(ctx, "/", func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				got = append(got, fi.Path())
			}
			return nil
		})
		if err != nil || !cmp.Equal(got, files) {
			t.Fatalf("walk %d: %v, %v; want %v", i, got, err, files)
		}
	}
	for _, f := range files {
		b, err := p.GetContent(ctx, f)
		if err != nil || string(b) != "content of "+f {
			t.Errorf("read %s: %q, %v", f, b, err)
		}
		if _, err := p.Stat(ctx, f); err != nil {
			t.Errorf("stat %s: %v", f, err)
		}
		rc, err := p.Reader(ctx, f, 0)
		if err != nil {
			t.Errorf("reader %s: %v", f, err)
			continue
		}
		rc.Close()
	}
	if l, err := p.List(ctx, "/a"); err != nil || len(l) != 3 {
		t.Errorf("list /a: %v, %v", l, err)
	}
	if err := p.Delete(ctx, "/c"); err != nil {
		t.Errorf("delete /c: %v", err)
	}
}

// A store that answers nothing under a prefix: the call fails, in bounded time,
// naming what it did and where.
func TestPatientGivesUp(t *testing.T) {
	s3, p, _ := s3Tree(t)
	s3.SetFault(s3.Hang(func(r *http.Request) bool { return strings.Contains(r.URL.RawQuery+r.URL.Path, "c") }))
	start := time.Now()
	var err error
	within(t, time.Minute, func() { _, err = p.Stat(context.Background(), "/c/4") })
	if !errors.Is(err, storage.ErrGaveUp) || !strings.Contains(err.Error(), "stat /c/4") || !strings.Contains(err.Error(), "4 attempts") {
		t.Errorf("err = %v, want ErrGaveUp naming the call and the path", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// A walk of more than a page whose second page never comes resumes after the last
// file it passed on: every file once, in order.
func TestPatientResumesWalk(t *testing.T) {
	s3, p, _ := s3Tree(t)
	ctx := context.Background()
	var want []string
	for i := range 1100 {
		f := fmt.Sprintf("/many/%s%04d", strings.Repeat("x", i%7), i)
		want = append(want, f)
	}
	for _, f := range want {
		if err := p.PutContent(ctx, f, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var hung atomic.Bool
	s3.SetFault(s3.Hang(func(r *http.Request) bool {
		q := r.URL.Query()
		return (q.Get("continuation-token") != "" || q.Get("start-after") != "") && hung.CompareAndSwap(false, true)
	}))
	var got []string
	var err error
	within(t, time.Minute, func() {
		err = p.Walk(ctx, "/many", func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				got = append(got, fi.Path())
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !hung.Load() {
		t.Fatal("no second page was asked for: the test proves nothing")
	}
	slices.Sort(want)
	if !cmp.Equal(got, want) {
		t.Errorf("walk passed on %d files, want %d once each", len(got), len(want))
	}
}
