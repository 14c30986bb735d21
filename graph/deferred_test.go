package graph

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// A build with deferred stats holds the same graph as one that stats everything
// (sizes from the manifests, tag history where a revision may go), with fewer stats,
// and still drops what a stat finds gone where a plan could delete it.
func TestDeferredStats(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	drv := storage.NewFilesystem(root)
	st, err := synth.Generate(ctx, drv, 3, synth.Layout{Repos: 3, ManifestsPerRepo: 12, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.3, OrphanBlobs: 30, BlobSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	// An orphan blob directory without data, and a layer link whose file an API
	// delete removed: only a stat tells, and neither may count as there.
	empty := filepath.Join(root, "docker/registry/v2/blobs/sha256/ab", "ab"+strings.Repeat("0", 62))
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	var links []string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "/_layers/") && d.Name() == "link" {
			links = append(links, p)
		}
		return err
	})
	if err != nil || len(links) < 2 {
		t.Fatalf("layer links: %v, %v", links, err)
	}
	if err := os.Remove(links[0]); err != nil {
		t.Fatal(err)
	}
	// A tagged manifest that gets a layer's size wrong: the manifests disagree, so
	// the size comes from a stat.
	layer, err := os.ReadFile(links[1])
	if err != nil {
		t.Fatal(err)
	}
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(layer) + `","size":12345},"layers":[]}`)
	md := digest.FromBytes(man)
	for _, f := range []struct {
		spec storage.Spec
		b    []byte
	}{
		{storage.Spec{Kind: storage.BlobData, Digest: md}, man},
		{storage.Spec{Kind: storage.RevisionLink, Repo: "conflict/app", Digest: md}, []byte(md)},
		{storage.Spec{Kind: storage.TagCurrentLink, Repo: "conflict/app", Tag: "wrong-size"}, []byte(md)},
	} {
		p, err := storage.Path(f.spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := drv.PutContent(ctx, p, f.b); err != nil {
			t.Fatal(err)
		}
	}

	build := func(deferStats bool) (string, int64) {
		t.Helper()
		x, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		c := storage.NewCounting(drv)
		if err := Build(ctx, c, x, WithWorkers(8), WithDeferredStats(deferStats)); err != nil {
			t.Fatal(err)
		}
		return dump(t, x), c.Count(storage.OpStat)
	}
	full, fullStats := build(false)
	def, defStats := build(true)
	if diff := cmp.Diff(full, def); diff != "" {
		t.Errorf("deferred build holds another graph (-full +deferred):\n%s", diff)
	}
	if !strings.Contains(full, "history ") {
		t.Fatal("registry has no tag history to check")
	}
	t.Logf("%d blobs, %d files: %d stats, %d deferred", st.Blobs, st.Files, fullStats, defStats)
	if defStats >= fullStats*3/4 {
		t.Errorf("deferred build made %d stats, the full one %d: expected far fewer", defStats, fullStats)
	}
}
