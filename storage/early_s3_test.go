package storage_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// On S3 the repository walks start with the blob walks and stop at the end of a
// page until the blob store is listed, then go on after the key they stopped at.
// With namespaces of several pages and a blob store past a page: Scan finds what
// the shards find (which walk with no stop), every blob before anything of a
// repository, and lists no page twice.
func TestScanEarlyRepositoryWalks(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/")
	st, err := synth.Generate(ctx, drv, 11, synth.Layout{Repos: 3, ManifestsPerRepo: 500, TagsPerRepo: 20, LayersPerManifest: 3, ShareRatio: 0.2, IndexFraction: 0.1, OrphanBlobs: 50, Workers: 32})
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs <= 1000 {
		t.Fatalf("%d blobs: the blob store must be past a page", st.Blobs)
	}
	for p, b := range map[string]string{
		"/docker/registry/v2/repositories/team1/NOTES":        "a stray file in a namespace",
		"/docker/registry/v2/repositories/team2/app2/README":  "a stray file in a repository",
		"/docker/registry/v2/repositories/team0":              "a stray file named like a namespace",
		"/docker/registry/v2/repositories/team1/app1":         "a stray file named like a repository",
		"/docker/registry/v2/repositories/team2/app2/_layers": "a stray file named like a data directory",
	} {
		if err := drv.PutContent(ctx, p, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Keys a namespace holds: its pages, at 1000 keys a page.
	pages := map[string]int{}
	for _, ns := range []string{"team0", "team1", "team2"} {
		n := 0
		if err := drv.Walk(ctx, "/docker/registry/v2/repositories/"+ns, func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		pages[ns] = (n + 999) / 1000
		if n <= 2000 {
			t.Fatalf("%s holds %d keys: want a namespace of three pages", ns, n)
		}
	}

	var mu sync.Mutex
	walks := map[string]int{} // namespace -> listing requests of its walk
	resumed := 0
	s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
		prefix, after, walk := benchenv.WalkRequest(r)
		ns, ok := strings.CutPrefix(prefix, "docker/registry/v2/repositories/")
		if !walk || !ok {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		walks[strings.TrimSuffix(ns, "/")]++
		if after != "" {
			resumed++
		}
		return false
	})
	_, ao := storage.Concurrency(drv.Name(), 0)
	wrapped := storage.NewPatient(storage.NewAdaptive(drv, *ao), storage.PatientOptions{})
	var got []string
	lastBlob, firstRepo := -1, -1
	err = storage.Scan(ctx, wrapped, func(e storage.Entry) error {
		if e.Kind == storage.BlobData {
			lastBlob = len(got)
		} else if e.Repo != "" && firstRepo < 0 {
			firstRepo = len(got)
		}
		got = append(got, entryString(e))
		return nil
	}, storage.WithTagTimes(false))
	if err != nil {
		t.Fatal(err)
	}
	if firstRepo < 0 || firstRepo < lastBlob {
		t.Errorf("an entry of a repository (#%d) came before the last blob (#%d)", firstRepo, lastBlob)
	}
	s3.SetFault(nil)

	var want []string
	add := func(e storage.Entry) error { want = append(want, entryString(e)); return nil }
	shards, err := storage.Shards(ctx, drv, add, storage.WithRepoShards(8))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		if err := storage.ScanShard(ctx, drv, s, 4, add); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	sameEntries(t, "Scan", got, "the shards", want)
	for _, p := range []string{"team1/NOTES", "team2/app2/README", "team0", "team1/app1", "team2/app2/_layers"} {
		if !slices.ContainsFunc(got, func(e string) bool { return strings.Contains(e, "/repositories/"+p+" ") }) {
			t.Errorf("Scan did not report the stray file %s", p)
		}
	}
	for ns, n := range pages {
		if walks[ns] != n {
			t.Errorf("%s: %d listing requests for %d pages", ns, walks[ns], n)
		}
	}
	if resumed == 0 {
		t.Error("no walk went on after a key: the walks did not stop at the gate")
	}
}

// The repository walks start once repositories/ is listed, without waiting for the
// blob store's first page (the probe), whose thousand keys take a while to read: the
// probe's answer is held until a namespace's walk is asked for.
func TestScanEarlyWalksDoNotWaitForProbe(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/")
	if _, err := synth.Generate(ctx, drv, 5, synth.Layout{Repos: 3, ManifestsPerRepo: 3, TagsPerRepo: 2, LayersPerManifest: 2}); err != nil {
		t.Fatal(err)
	}
	walked := make(chan struct{})
	var once sync.Once
	var waited atomic.Bool
	s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
		p, after, walk := benchenv.WalkRequest(r)
		if !walk {
			return false
		}
		switch {
		case strings.HasPrefix(p, "docker/registry/v2/repositories/team"):
			once.Do(func() { close(walked) })
		case p == "docker/registry/v2/blobs/" && after == "":
			select {
			case <-walked:
			case <-time.After(5 * time.Second):
				waited.Store(true)
			}
		}
		return false
	})
	n := 0
	if err := storage.Scan(ctx, drv, func(storage.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if waited.Load() {
		t.Error("no repository walk started before the blob store's first page was read")
	}
	if n == 0 {
		t.Error("Scan found nothing")
	}
}

// The walks that start before the blob store is listed tell WithEarlyRevisions each
// revision link they find, from one goroutine at a time with Scan's fn. A walk done
// walking gives up its slot while what such walks hold fits a budget: a registry of
// more top-level names than early walks is then walked whole before the blob store
// is listed (here its first page is held until then); with no budget, only the
// first earlyWalks are.
func TestScanEarlyRevisions(t *testing.T) {
	ctx := context.Background()
	const names = storage.EarlyWalks + 8
	for _, tc := range []struct {
		name   string
		budget int64 // -1: as Scan has it
		walked int
	}{{"budget", -1, names}, {"no budget", 0, storage.EarlyWalks}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.budget >= 0 {
				defer storage.SetEarlyHeld(tc.budget)()
			}
			s3, drv := benchenv.StartS3(t, "/")
			if _, err := synth.Generate(ctx, drv, 3, synth.Layout{Repos: names, Namespaces: names, ManifestsPerRepo: 2, TagsPerRepo: 1, LayersPerManifest: 1}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			walked := map[string]bool{}
			enough := make(chan struct{}) // as many walked as should be
			var held atomic.Int32         // namespaces walked when the blob store's first page went
			s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
				p, after, walk := benchenv.WalkRequest(r)
				if !walk {
					return false
				}
				switch {
				case strings.HasPrefix(p, "docker/registry/v2/repositories/team"):
					mu.Lock()
					if walked[p] = true; len(walked) == tc.walked {
						close(enough)
					}
					mu.Unlock()
				case p == "docker/registry/v2/blobs/" && after == "":
					// Then a while for any walk that should not start to start.
					select {
					case <-enough:
						time.Sleep(300 * time.Millisecond)
					case <-time.After(20 * time.Second):
					}
					mu.Lock()
					held.Store(int32(len(walked)))
					mu.Unlock()
				}
				return false
			})
			calls := 0 // no lock: the race detector checks that the two never run at once
			early := map[digest.Digest]bool{}
			var revisions []digest.Digest
			err := storage.Scan(ctx, drv, func(e storage.Entry) error {
				calls++
				if e.Kind == storage.RevisionLink {
					revisions = append(revisions, e.Digest)
				}
				return nil
			}, storage.WithWorkers(64), storage.WithEarlyRevisions(func(d digest.Digest) {
				calls++
				early[d] = true
			}))
			if err != nil {
				t.Fatal(err)
			}
			if got := int(held.Load()); got != tc.walked {
				t.Errorf("%d of %d namespaces walked before the blob store was listed, want %d", got, names, tc.walked)
			}
			if len(revisions) != 2*names {
				t.Fatalf("%d revision links, want %d", len(revisions), 2*names)
			}
			n := 0
			for _, d := range revisions {
				if early[d] {
					n++
				}
			}
			// Each walk before the blob store is listed tells its revision links.
			if n != 2*tc.walked {
				t.Errorf("%d revision links told early, want %d (those of the %d walks before the blob store was listed)", n, 2*tc.walked, tc.walked)
			}
		})
	}
}
