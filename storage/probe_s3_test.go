package storage_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// The blob store on S3 is first walked whole, up to a page; a larger one is then
// walked prefix by prefix. Either way every blob is emitted exactly once, and a
// small store costs one listing request.
func TestS3BlobListingProbe(t *testing.T) {
	for _, c := range []struct {
		n          int
		ignoreHint bool // the store lists from the first key whatever it is asked
	}{{300, false}, {2500, false}, {2500, true}} {
		n := c.n
		t.Run(fmt.Sprint(n, c.ignoreHint), func(t *testing.T) {
			ctx := context.Background()
			s3, drv := benchenv.StartS3(t, "/")
			want := map[digest.Digest]bool{}
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(32)
			for i := range n {
				d := digest.FromString(fmt.Sprint(i))
				want[d] = true
				p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
				if err != nil {
					t.Fatal(err)
				}
				g.Go(func() error { return drv.PutContent(gctx, p, []byte(fmt.Sprint(i))) })
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			// Stray files beside the prefixes: listed like them, each reported once.
			// One is named like a prefix, one sorts between a prefix's name and its
			// files.
			strays := map[string]int{}
			for _, p := range []string{"stray", "3a", "3a-x"} {
				p = "/docker/registry/v2/blobs/sha256/" + p
				strays[p] = 0
				if err := drv.PutContent(ctx, p, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			// The probe's answer waits until blobs/sha256/ is being listed: the scan
			// must ask for it in the same round trip, not once the probe says there
			// is more than a page.
			var lists, ranges, pagesOn atomic.Int64
			shaListed := make(chan struct{})
			var shaOnce sync.Once
			var probeWaited atomic.Bool
			s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
				q := r.URL.Query()
				if q.Get("list-type") != "2" {
					return false
				}
				lists.Add(1)
				if q.Get("prefix") == "docker/registry/v2/blobs/sha256/" && q.Get("delimiter") == "" {
					ranges.Add(1)
					if q.Get("continuation-token") != "" {
						pagesOn.Add(1)
					}
					if c.ignoreHint {
						q.Del("start-after")
						r.URL.RawQuery = q.Encode()
					}
				}
				switch {
				case q.Get("prefix") == "docker/registry/v2/blobs/sha256/" && q.Get("delimiter") == "/":
					shaOnce.Do(func() { close(shaListed) })
				case q.Get("prefix") == "docker/registry/v2/blobs/" && q.Get("delimiter") == "" && q.Get("start-after") == "":
					select {
					case <-shaListed:
					case <-time.After(5 * time.Second):
						probeWaited.Store(true)
					}
				}
				return false
			})
			got := map[digest.Digest]int{}
			// As regsweep opens an object store: patient, with adaptive concurrency.
			_, ao := storage.Concurrency(drv.Name(), 0)
			wrapped := storage.NewPatient(storage.NewAdaptive(drv, *ao), storage.PatientOptions{})
			err := storage.Scan(ctx, wrapped, func(e storage.Entry) error {
				if e.Kind == storage.BlobData {
					got[e.Digest]++
				}
				if _, ok := strays[e.Path]; ok && e.Kind == storage.KindWarning {
					strays[e.Path]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for d := range want {
				if got[d] != 1 {
					t.Errorf("blob %s emitted %d times", d, got[d])
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d blobs emitted, %d stored", len(got), len(want))
			}
			for p, n := range strays {
				if n != 1 {
					t.Errorf("the stray file %s reported %d times, want once", p, n)
				}
			}
			if probeWaited.Load() {
				t.Error("blobs/sha256/ was not listed in the probe's round trip")
			}
			// repositories/, the blob store's walk, and with it blobs/ and
			// blobs/sha256/. Small: that is all (the walk had it all in a page).
			// Large: the walk stops at the end of its first page (a second would only
			// say that there is more), then the rest is walked in ranges of prefixes
			// of under a page each, at the density of the probe's page: a few
			// listings, not one for each of the 256 prefixes.
			if n < 1000 {
				if lists.Load() != 4 || ranges.Load() != 0 {
					t.Errorf("%d blobs: %d listing requests (%d of ranges), want 4 (0)", n, lists.Load(), ranges.Load())
				}
			} else {
				if most := int64(2*(n+len(strays)-1000)/750 + 2); ranges.Load() < 1 || ranges.Load() > most && !c.ignoreHint {
					t.Errorf("%d blobs: %d range listings, want 1 to %d", n, ranges.Load(), most)
				}
				if lists.Load() != 4+ranges.Load() {
					t.Errorf("%d blobs: %d listing requests, want 4 and %d of ranges", n, lists.Load(), ranges.Load())
				}
				if !c.ignoreHint && pagesOn.Load() != 0 {
					t.Errorf("%d range listings went on to a second page", pagesOn.Load())
				}
			}
			t.Logf("%d blobs: %d listing requests, %d of ranges, %d pages on", n, lists.Load(), ranges.Load(), pagesOn.Load())
		})
	}
}
