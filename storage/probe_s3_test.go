package storage_test

import (
	"context"
	"fmt"
	"net/http"
	"path"
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
	for _, n := range []int{300, 2500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
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
			// One is named like a prefix: the store lists it and the prefix alike.
			strays := map[string]int{}
			// The last prefix: past the probe's page when there is one.
			var last digest.Digest
			for d := range want {
				last = max(last, d)
			}
			first, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: last})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"/docker/registry/v2/blobs/sha256/stray", path.Dir(path.Dir(first))} {
				strays[p] = 0
				if err := drv.PutContent(ctx, p, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			// The probe's answer waits until blobs/sha256/ is being listed: the scan
			// must ask for it in the same round trip, not once the probe says there
			// is more than a page.
			var lists atomic.Int64
			shaListed := make(chan struct{})
			var shaOnce sync.Once
			var probeWaited atomic.Bool
			s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
				q := r.URL.Query()
				if q.Get("list-type") != "2" {
					return false
				}
				lists.Add(1)
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
			err = storage.Scan(ctx, wrapped, func(e storage.Entry) error {
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
			// say that there is more), then a walk of each of blobs/sha256/'s 257
			// children (256 prefixes and the stray file, which lists as one).
			wantLists := 4
			if n > 1000 {
				wantLists = 4 + 257
			}
			if lists.Load() != int64(wantLists) {
				t.Errorf("%d blobs: %d listing requests, want %d", n, lists.Load(), wantLists)
			}
			t.Logf("%d blobs: %d listing requests", n, lists.Load())
		})
	}
}
