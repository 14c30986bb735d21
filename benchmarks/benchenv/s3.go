// Package benchenv sets up the storage benchmarks and tests measure against: an
// in-process S3-protocol server (gofakes3) behind distribution's real s3 driver,
// with per-request latency and request counting at the HTTP layer.
package benchenv

import (
	"context"
	"fmt"
	"html"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws" // registers "s3aws"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is a running fake S3 server.
type S3 struct {
	srv      *httptest.Server
	latency  atomic.Int64 // nanoseconds added to every request
	requests atomic.Int64
	conns    atomic.Int64 // connections accepted
	fault    atomic.Pointer[Fault]
	closing  chan struct{} // closed by Close: releases held requests
	clock    *storeClock
	Bucket   string
}

// WalkRequest says whether r is a page of a walk as distribution's s3 driver makes
// one (ListObjectsV2 without a delimiter), and of which key prefix, after which key
// (empty: the first page).
func WalkRequest(r *http.Request) (prefix, startAfter string, ok bool) {
	q := r.URL.Query()
	if q.Get("list-type") != "2" || q.Get("delimiter") != "" {
		return "", "", false
	}
	return q.Get("prefix"), q.Get("start-after"), true
}

// storeClock is the time the store gives the objects it writes: the real time plus
// an offset, for tests of a store whose clock is behind (or ahead of) the client's.
type storeClock struct{ offset atomic.Int64 }

func (c *storeClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *storeClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// SetClockOffset makes the times of objects written from now on the real time plus d.
func (s *S3) SetClockOffset(d time.Duration) { s.clock.offset.Store(int64(d)) }

// Fault answers a request in place of the server when it returns true: tests use it
// to make the store misbehave (an empty listing, an error status).
type Fault func(w http.ResponseWriter, r *http.Request) bool

// SetFault installs f for the requests from now on (nil: none).
func (s *S3) SetFault(f Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// EmptyListing is a Fault that answers every listing whose prefix contains part
// with no keys, as a bucket prefix the credentials cannot see answers.
func EmptyListing(part string) Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("list-type") != "2" || !strings.Contains(q.Get("prefix"), part) {
			return false
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`,
			html.EscapeString(strings.TrimPrefix(r.URL.Path, "/")), html.EscapeString(q.Get("prefix")))
		return true
	}
}

// Hang is a Fault that never answers the requests pick chooses: it holds them until
// the client gives up (or the server closes), as an overloaded or broken store does.
func (s *S3) Hang(pick func(r *http.Request) bool) Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !pick(r) {
			return false
		}
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return true
	}
}

// FailListing is a Fault that answers every listing whose prefix contains part with
// status (500, 503, 403 ...).
func FailListing(part string, status int) Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("list-type") != "2" || !strings.Contains(q.Get("prefix"), part) {
			return false
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected fault</Message></Error>`)
		return true
	}
}

// NewS3 starts a fake S3 server on 127.0.0.1 with one bucket.
func NewS3(bucket string) (*S3, error) {
	clock := &storeClock{}
	backend := newSeekingBackend(s3mem.New(s3mem.WithTimeSource(clock)))
	if err := backend.CreateBucket(bucket); err != nil {
		return nil, err
	}
	s := &S3{Bucket: bucket, closing: make(chan struct{}), clock: clock}
	fake := gofakes3.New(backend, gofakes3.WithAutoBucket(true))
	h := fake.Server()
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if d := time.Duration(s.latency.Load()); d > 0 {
			time.Sleep(d)
		}
		if f := s.fault.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	return s, nil
}

// StartS3 starts a fake S3 server with a bucket "registry" for a test or benchmark,
// stopped when it ends, and distribution's s3 driver for it under root.
func StartS3(tb testing.TB, root string) (*S3, driver.StorageDriver) {
	tb.Helper()
	s, err := NewS3("registry")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	drv, err := s.Driver(context.Background(), root)
	if err != nil {
		tb.Fatal(err)
	}
	return s, drv
}

// SetLatency sets the delay added to every request from now on.
func (s *S3) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Requests returns the number of requests served so far.
func (s *S3) Requests() int64 { return s.requests.Load() }

// Connections returns the number of connections clients opened so far.
func (s *S3) Connections() int64 { return s.conns.Load() }

// URL is the server's endpoint.
func (s *S3) URL() string { return s.srv.URL }

// Close stops the server, releasing the requests a fault holds.
func (s *S3) Close() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.srv.Close()
}

// Parameters are the s3 driver parameters of a registry config for this server.
func (s *S3) Parameters(root string) map[string]any {
	return map[string]any{
		"region": "us-east-1", "bucket": s.Bucket, "regionendpoint": s.srv.URL,
		"forcepathstyle": true, "secure": false, "v4auth": true,
		"accesskey": "regsweep", "secretkey": "regsweep-secret", "rootdirectory": root,
	}
}

// Config is a registry config.yml whose storage is this server (keys in order).
func (s *S3) Config(root string) string {
	params := s.Parameters(root)
	var y strings.Builder
	y.WriteString("version: 0.1\nstorage:\n  s3:\n")
	for _, k := range slices.Sorted(maps.Keys(params)) {
		fmt.Fprintf(&y, "    %s: %v\n", k, params[k])
	}
	return y.String()
}

// Driver creates distribution's real s3 driver for this server.
func (s *S3) Driver(ctx context.Context, root string) (driver.StorageDriver, error) {
	d, err := factory.Create(ctx, "s3aws", s.Parameters(root))
	if err != nil {
		return nil, fmt.Errorf("create s3 driver for %s: %w", s.srv.URL, err)
	}
	return d, nil
}

// PutTree copies the files under the local directory src into drv, at the same
// paths: a registry's tree onto an object store.
func PutTree(ctx context.Context, drv driver.StorageDriver, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return drv.PutContent(ctx, "/"+filepath.ToSlash(rel), b)
	})
}
