package graph_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// On S3 the manifests named by the revision links of the early repository walks are
// read before the blob store is listed, each once. The cache keeps such a parse only
// if the listed blob is the file that was read: here one manifest blob is replaced
// right after its early read, before the blob store is listed (its first page is
// held until then, and until every manifest is asked for, so that every read is
// early whatever the machine's load). The build takes the early read (content
// checked against its digest), but the next build must read the blob again and find
// it unreadable:
//   - same size, a later time: the time tells;
//   - a time from a store clock an hour behind, another size: the size tells.
func TestEarlyReadsS3(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offset  time.Duration // of the store's clock when the blob is replaced
		replace func([]byte) []byte
	}{
		{"same size, later time", 0, func(b []byte) []byte {
			b = bytes.Clone(b)
			i := bytes.Index(b, []byte("sha256:")) + len("sha256:")
			b[i] ^= 1 // another hex digit: the size is the same
			return b
		}},
		{"other size, earlier time", -time.Hour, func(b []byte) []byte { return append(bytes.Clone(b), ' ') }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s3, drv := benchenv.StartS3(t, "/")
			st, err := synth.Generate(ctx, drv, 5, synth.Layout{Repos: 6, Namespaces: 6, ManifestsPerRepo: 4, TagsPerRepo: 2, LayersPerManifest: 2, IndexFraction: 0.3})
			if err != nil {
				t.Fatal(err)
			}
			victim := firstRevision(t, drv, "team2/app2")
			key := regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: victim})
			orig, err := drv.GetContent(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			// Blobs written a second before they are read: the time rule keeps
			// every parse but the victim's.
			time.Sleep(1100 * time.Millisecond)

			var mu sync.Mutex
			gets := map[string]int{} // GETs of blob data, by URL path
			replaced := make(chan struct{})
			answered := false              // the victim's first GET
			allRead := make(chan struct{}) // every manifest asked for: every early read started
			manifests := st.Manifests + st.Indexes
			allAsked := false
			var replaceErr error
			s3.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/data") {
					mu.Lock()
					gets[r.URL.Path]++
					if gets[r.URL.Path] == 1 && len(gets) == manifests && !allAsked {
						allAsked = true
						close(allRead)
					}
					first := !answered && strings.HasSuffix(r.URL.Path, key)
					answered = answered || first
					mu.Unlock()
					if first {
						// Answer with the file as it was, then replace it.
						w.Header().Set("Content-Length", strconv.Itoa(len(orig)))
						w.Write(orig)
						s3.SetClockOffset(tc.offset)
						replaceErr = drv.PutContent(ctx, key, tc.replace(orig))
						s3.SetClockOffset(0)
						close(replaced)
						return true
					}
				}
				if p, _, walk := benchenv.WalkRequest(r); walk && p == "docker/registry/v2/blobs/" {
					guard := time.After(20 * time.Second) // passes only if reads are not early
					select {
					case <-replaced:
					case <-guard:
					}
					select {
					case <-allRead:
					case <-guard:
					}
				}
				return false
			})
			idx, err := graph.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer idx.Close()
			first := buildMeta(t, drv, idx)
			select {
			case <-replaced:
			default:
				t.Fatal("the victim was not read before the blob store was listed")
			}
			if replaceErr != nil {
				t.Fatal(replaceErr)
			}
			if first.ManifestsEarly != first.ManifestsRead || first.ManifestsRead != first.Manifests {
				t.Errorf("first build: %d manifests, %d read, %d of them early: want all early", first.Manifests, first.ManifestsRead, first.ManifestsEarly)
			}
			mu.Lock()
			for p, n := range gets {
				if n != 1 {
					t.Errorf("first build: %d GETs of %s", n, p)
				}
			}
			if len(gets) != first.Manifests {
				t.Errorf("first build: %d blobs read for %d manifests", len(gets), first.Manifests)
			}
			clear(gets)
			mu.Unlock()

			again := buildMeta(t, drv, idx)
			mu.Lock()
			n := len(gets)
			mu.Unlock()
			if n != 1 || again.ManifestsRead != 1 || again.ManifestsCached != first.Manifests-1 {
				t.Errorf("rerun: %d blobs read, meta %+v: want the replaced one read and the rest cached", n, again)
			}
			if m := snapshot(t, idx)[victim.String()]; m.Unreadable == "" {
				t.Errorf("the replaced manifest %s was not read again: %+v", victim, m)
			}
		})
	}
}

// firstRevision returns the first manifest repo's revision links name.
func firstRevision(t *testing.T, drv driver.StorageDriver, repo string) digest.Digest {
	t.Helper()
	dir := "/docker/registry/v2/repositories/" + repo + "/_manifests/revisions/sha256"
	l, err := drv.List(context.Background(), dir)
	if err != nil || len(l) == 0 {
		t.Fatalf("list %s: %v %v", dir, l, err)
	}
	return digest.NewDigestFromEncoded(digest.SHA256, l[0][len(dir)+1:])
}
