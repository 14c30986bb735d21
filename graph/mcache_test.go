package graph_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
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

// blobReads counts the reads of blob data through a driver: what the manifest cache
// saves.
type blobReads struct {
	driver.StorageDriver
	n atomic.Int64
}

func (c *blobReads) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if strings.Contains(p, "/blobs/") {
		c.n.Add(1)
	}
	return c.StorageDriver.Reader(ctx, p, off)
}

func (c *blobReads) GetContent(ctx context.Context, p string) ([]byte, error) {
	if strings.Contains(p, "/blobs/") {
		c.n.Add(1)
	}
	return c.StorageDriver.GetContent(ctx, p)
}

func buildMeta(t *testing.T, drv driver.StorageDriver, idx *graph.Index, opts ...graph.BuildOption) graph.Meta {
	t.Helper()
	if err := graph.Build(context.Background(), drv, idx, append([]graph.BuildOption{graph.WithWorkers(8)}, opts...)...); err != nil {
		t.Fatal(err)
	}
	m, err := idx.Meta()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// snapshot is what a build put in the index, for comparing builds.
func snapshot(t *testing.T, idx *graph.Index) map[string]graph.Manifest {
	t.Helper()
	out := map[string]graph.Manifest{}
	err := idx.Manifests(func(m graph.Manifest) error {
		var edges []string
		idx.Edges(m.ID, func(e graph.Edge) error {
			d, _ := idx.Digest(e.To)
			edges = append(edges, string(rune('0'+e.Kind))+d.String())
			return nil
		})
		m.ID, m.Subject, m.Mentions, m.Platforms = 0, 0, nil, nil
		m.MediaType += " " + strings.Join(edges, ",")
		out[m.Digest.String()] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, got, want map[string]graph.Manifest) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d manifests, a fresh build has %d", what, len(got), len(want))
	}
	for d, w := range want {
		if g, ok := got[d]; !ok || g.MediaType != w.MediaType || g.Unreadable != w.Unreadable || g.Missing != w.Missing || g.ArtifactType != w.ArtifactType {
			t.Errorf("%s: manifest %s\n got %+v\nwant %+v", what, d, g, w)
		}
	}
}

// On the filesystem: a rerun over an unchanged registry reads no manifest blob and
// indexes what a fresh build does; after new pushes it reads exactly those; a
// manifest blob replaced by another file is read again (and found unreadable).
func TestManifestCacheFilesystem(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	cfg.Repos = 6
	if _, err := synth.Populate(ctx, ns, 3, cfg); err != nil {
		t.Fatal(err)
	}
	drv := &blobReads{StorageDriver: storage.NewFilesystem(root)}
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()

	first := buildMeta(t, drv, idx)
	firstReads := drv.n.Swap(0)
	if first.ManifestsCached != 0 || firstReads < int64(first.Manifests) || first.Manifests < 20 {
		t.Fatalf("first build: %+v, %d blob reads", first, firstReads)
	}
	fresh := snapshot(t, idx)

	again := buildMeta(t, drv, idx)
	if n := drv.n.Swap(0); n != 0 || again.ManifestsRead != 0 || again.ManifestsCached != first.Manifests {
		t.Errorf("rerun on an unchanged registry: %d blob reads, meta %+v (first build: %d manifests)", n, again, first.Manifests)
	}
	sameSnapshot(t, "rerun", snapshot(t, idx), fresh)

	// New pushes: only their manifests are read.
	more := cfg
	more.Repos = 2
	more.DeleteFraction, more.UntagFraction, more.RetagFraction = 0, 0, 0
	sum, err := synth.Populate(ctx, ns, 99, more)
	if err != nil {
		t.Fatal(err)
	}
	after := buildMeta(t, drv, idx)
	reads := drv.n.Swap(0)
	newManifests := after.Manifests - first.Manifests
	if newManifests <= 0 || after.ManifestsRead != newManifests || reads != int64(newManifests) {
		t.Errorf("after pushing %d manifests (%v): read %d blobs, meta %+v", newManifests, sum.Repos, reads, after)
	}
	freshIdx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer freshIdx.Close()
	buildMeta(t, drv, freshIdx, graph.WithManifestCache(false))
	drv.n.Store(0)
	sameSnapshot(t, "after pushes", snapshot(t, idx), snapshot(t, freshIdx))

	// A manifest blob replaced by a different file of the same name (a restore gone
	// wrong): read again, and unreadable, as a fresh build finds it.
	var victim string
	for d, m := range snapshot(t, idx) {
		if m.Unreadable == "" && !m.Missing {
			victim = d
			break
		}
	}
	dataPath := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: digestOf(victim)}))
	if err := os.WriteFile(dataPath, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(dataPath, later, later)
	replaced := buildMeta(t, drv, idx)
	if n := drv.n.Swap(0); n != 1 || replaced.ManifestsRead != 1 {
		t.Errorf("one manifest blob replaced: %d reads, meta %+v", n, replaced)
	}
	if m := snapshot(t, idx)[victim]; m.Unreadable == "" {
		t.Errorf("replaced manifest %s not found unreadable: %+v", victim, m)
	}
	buildMeta(t, drv, freshIdx, graph.WithManifestCache(false))
	sameSnapshot(t, "after a replaced blob", snapshot(t, idx), snapshot(t, freshIdx))
}

// On S3 (distribution's s3 driver against an in-process server): the listing gives
// sizes and times, so a rerun makes no GET of a manifest blob and no HEAD either.
func TestManifestCacheS3(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/prefix")
	if err := benchenv.PutTree(ctx, drv, regtest.SampleDir()); err != nil {
		t.Fatal(err)
	}
	var gets, heads, tagGets atomic.Int64
	s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			switch r.Method {
			case http.MethodGet:
				gets.Add(1)
			case http.MethodHead:
				heads.Add(1)
			}
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/current/link") {
			tagGets.Add(1)
		}
		return false
	})
	// Tag links are cached only when written at least a second before they are read.
	time.Sleep(2 * time.Second)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	first := buildMeta(t, drv, idx)
	if gets.Load() < int64(first.Manifests) {
		t.Fatalf("first build: %d GETs of blobs for %d manifests", gets.Load(), first.Manifests)
	}
	fresh := snapshot(t, idx)
	gets.Store(0)
	heads.Store(0)
	again := buildMeta(t, drv, idx)
	if gets.Load() != 0 || heads.Load() != 0 || again.ManifestsCached != first.Manifests {
		t.Errorf("S3 rerun: %d GETs, %d HEADs of blobs; meta %+v", gets.Load(), heads.Load(), again)
	}
	sameSnapshot(t, "S3 rerun", snapshot(t, idx), fresh)

	// With the tag link cache (runs that delete nothing): the first build with it
	// reads the tag links and keeps them, the next reads none; a tag moved since is
	// read again, and the index names its new manifest.
	buildMeta(t, drv, idx, graph.WithTagLinkCache(true))
	tagGets.Store(0)
	cachedTags := buildMeta(t, drv, idx, graph.WithTagLinkCache(true))
	if tagGets.Load() != 0 || cachedTags.TagLinksCached == 0 {
		t.Errorf("S3 rerun with the tag link cache: %d tag link GETs, %d cached", tagGets.Load(), cachedTags.TagLinksCached)
	}
	tagKey := "/docker/registry/v2/repositories/team/app/web/_manifests/tags/latest/current/link"
	moved, err := drv.GetContent(ctx, "/docker/registry/v2/repositories/team/app/web/_manifests/tags/multi/current/link")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a new second: the rewrite gets a new time
	if err := drv.PutContent(ctx, tagKey, moved); err != nil {
		t.Fatal(err)
	}
	tagGets.Store(0)
	buildMeta(t, drv, idx, graph.WithTagLinkCache(true))
	if tagGets.Load() != 1 {
		t.Errorf("one tag moved: %d tag link GETs, want 1", tagGets.Load())
	}
	var latest, multi uint32
	idx.Tags(func(tg graph.Tag) error {
		switch {
		case tg.Repo == "team/app/web" && tg.Name == "latest":
			latest = tg.ID
		case tg.Repo == "team/app/web" && tg.Name == "multi":
			multi = tg.ID
		}
		return nil
	})
	if latest == 0 || latest != multi {
		t.Errorf("after moving latest to multi's manifest: latest %d, multi %d", latest, multi)
	}

	// A manifest blob replaced by another object of the same key: the listing's
	// size and time differ, so it is read again, and found unreadable.
	var victim string
	for d, m := range fresh {
		if m.Unreadable == "" && !m.Missing {
			victim = d
			break
		}
	}
	key := regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: digestOf(victim)})
	if err := drv.PutContent(ctx, key, []byte(`{"schemaVersion":2}`)); err != nil {
		t.Fatal(err)
	}
	gets.Store(0)
	replaced := buildMeta(t, drv, idx)
	if gets.Load() != 1 || replaced.ManifestsRead != 1 {
		t.Errorf("S3, one manifest object replaced: %d GETs, meta %+v", gets.Load(), replaced)
	}
	if m := snapshot(t, idx)[victim]; m.Unreadable == "" {
		t.Errorf("replaced manifest %s not found unreadable: %+v", victim, m)
	}
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }
