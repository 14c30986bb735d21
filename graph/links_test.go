package graph_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// LinkedBy and RevisionsOf answer as a scan of every revision link does, for a
// manifest linked by several repositories (names that sort around each other), and
// in a what-if without one of them.
func TestLinkedByAndRevisionsOf(t *testing.T) {
	ctx := context.Background()
	root := regtest.Sample(t)
	cfg := regtest.PutBlob(t, root, "x", []byte(`{"os":"linux"}`))
	manifest := func(n int) []byte {
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":14},"layers":[],"annotations":{"n":"%d"}}`, cfg, n)
	}
	repos := []string{"b", "a", "a/b", "a-b", "c/d/e"}
	for i, r := range repos {
		regtest.PutBlob(t, root, r, []byte(`{"os":"linux"}`))
		for n := range i + 2 { // manifests 0 and 1 in every repository, more in some
			regtest.PutManifest(t, root, r, fmt.Sprint("t", n), manifest(n))
		}
	}
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(root), idx); err != nil {
		t.Fatal(err)
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, g *graph.Graph) {
		linked, revs := map[uint32][]string{}, map[string][]uint32{}
		for _, l := range g.Revisions() {
			linked[l.ID] = append(linked[l.ID], l.Repo)
			revs[l.Repo] = append(revs[l.Repo], l.ID)
		}
		shared := 0
		for _, id := range g.ManifestIDs() {
			got, want := g.LinkedBy(id), linked[id]
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: LinkedBy(%d) = %q, want %q", name, id, got, want)
			}
			if len(want) > 1 {
				shared++
			}
		}
		if shared < 2 {
			t.Errorf("%s: %d manifests in more than one repository, want at least 2", name, shared)
		}
		for _, r := range append(repos, "nothing", "a/b/c") {
			got, want := g.RevisionsOf(r), revs[r]
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: RevisionsOf(%q) = %v, want %v", name, r, got, want)
			}
		}
	}
	check("loaded", g)
	check("without a/b", g.Without(nil, map[string]bool{"a/b": true}))
}
