package analysis_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// fixture writes into a copy of the sample registry.
type fixture struct {
	t    *testing.T
	root string
}

func (f fixture) path(s storage.Spec) string {
	f.t.Helper()
	p, err := storage.Path(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return filepath.Join(f.root, filepath.FromSlash(p))
}

func (f fixture) write(s storage.Spec, b []byte) {
	f.t.Helper()
	p := f.path(s)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f fixture) read(s storage.Spec) []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.path(s))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// closure returns d and everything it references, read from disk as plain JSON:
// config, layers, index children, recursively (subjects are not followed).
func (f fixture) closure(d digest.Digest, into map[digest.Digest]bool) {
	if into[d] {
		return
	}
	into[d] = true
	b, err := os.ReadFile(f.path(storage.Spec{Kind: storage.BlobData, Digest: d}))
	if err != nil {
		return
	}
	var m struct {
		Config    struct{ Digest digest.Digest }
		Layers    []struct{ Digest digest.Digest }
		Manifests []struct{ Digest digest.Digest }
	}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	if m.Config.Digest != "" {
		into[m.Config.Digest] = true
	}
	for _, l := range m.Layers {
		into[l.Digest] = true
	}
	for _, c := range m.Manifests {
		f.closure(c.Digest, into)
	}
}

func (f fixture) bytes(ds map[digest.Digest]bool) (int64, int) {
	var n int64
	var count int
	for d := range ds {
		if fi, err := os.Stat(f.path(storage.Spec{Kind: storage.BlobData, Digest: d})); err == nil {
			n += fi.Size()
			count++
		}
	}
	return n, count
}

// The case that made the walks disagree: team/app/web tags a truncated index that
// mentions library/debian's untagged manifest, and library/debian has a tag naming
// a manifest whose blob is gone. Mark, the repository stats, capacity, the what-if
// and the image graph must all see the same reach, computed here from the files.
func TestOneWalkEverywhere(t *testing.T) {
	ctx := context.Background()
	f := fixture{t, t.TempDir()}
	if err := os.CopyFS(f.root, os.DirFS("../../testdata/sample/registry")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	filepath.Walk(f.root, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })

	// debian's untagged manifest: what the truncated index mentions.
	revs, _ := filepath.Glob(filepath.Join(f.root, "docker/registry/v2/repositories/library/debian/_manifests/revisions/sha256/*"))
	tagged := digest.Digest(f.read(storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12"}))
	var victim digest.Digest
	for _, r := range revs {
		if d := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(r)); d != tagged {
			victim = d
		}
	}
	if victim == "" {
		t.Fatal("the sample's library/debian has no untagged manifest")
	}
	half := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + victim.String() + `","si`)
	h := digest.FromBytes(half)
	f.write(storage.Spec{Kind: storage.BlobData, Digest: h}, half)
	f.write(storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/web", Digest: h}, []byte(h))
	f.write(storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "half"}, []byte(h))
	ghost := digest.FromString("a manifest whose blob is gone")
	f.write(storage.Spec{Kind: storage.RevisionLink, Repo: "library/debian", Digest: ghost}, []byte(ghost))
	f.write(storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "ghost"}, []byte(ghost))

	// Expected, from the files: an unreadable or missing manifest reaches what it
	// mentions and every revision of its repositories, with their closures.
	expect := func(repo string, extra ...digest.Digest) map[digest.Digest]bool {
		out := map[digest.Digest]bool{}
		rs, _ := filepath.Glob(filepath.Join(f.root, "docker/registry/v2/repositories", repo, "_manifests/revisions/sha256/*"))
		for _, r := range rs {
			f.closure(digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(r)), out)
		}
		for _, d := range extra {
			f.closure(d, out)
		}
		return out
	}
	wantWeb := expect("team/app/web", victim)
	wantDebian := expect("library/debian")

	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(f.root), idx, graph.WithDeferredStats(false)); err != nil {
		t.Fatal(err)
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, g, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithAllowMassDelete(true))
	if err != nil {
		t.Fatal(err)
	}

	// Mark: nothing either reach holds is deleted, and both block.
	for _, b := range p.Blobs {
		if wantWeb[b.Digest()] || wantDebian[b.Digest()] {
			t.Errorf("mark: %s is reached and planned for deletion", b.Digest())
		}
	}
	if len(p.Blocked) < 2 {
		t.Errorf("blocked: %+v, want the truncated index and the broken root", p.Blocked)
	}
	// Stats: each repository's bytes are what its reach holds.
	c, err := analysis.NewCapacity(ctx, p, analysis.WithTopN(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		repo, tag string
		want      map[digest.Digest]bool
	}{{"team/app/web", "half", wantWeb}, {"library/debian", "ghost", wantDebian}} {
		wantBytes, wantBlobs := f.bytes(x.want)
		var stats gc.RepoStats
		var image analysis.ImageInfo
		for _, r := range c.Repositories {
			if r.Name != x.repo {
				continue
			}
			stats = r.RepoStats
			for _, im := range r.LargestImages {
				if slices.Contains(im.Tags, x.tag) {
					image = im
				}
			}
		}
		if stats.Bytes != wantBytes {
			t.Errorf("%s: stats say %d bytes, the files %d", x.repo, stats.Bytes, wantBytes)
		}
		// Capacity: the tag's image reaches all of it too.
		if image.Bytes != wantBytes || image.Blobs != wantBlobs {
			t.Errorf("%s:%s: capacity says %d bytes in %d blobs, the files %d in %d", x.repo, x.tag, image.Bytes, image.Blobs, wantBytes, wantBlobs)
		}
		// Image graph: every reached digest is drawn, and not as a bare blob when
		// it is a manifest.
		graphs, err := analysis.NewImageGraphs(ctx, p, x.repo)
		if err != nil {
			t.Fatal(err)
		}
		drawn := map[digest.Digest]string{}
		for _, n := range graphs[0].Nodes {
			drawn[n.Digest] = n.Kind
		}
		for d := range x.want {
			if _, ok := drawn[d]; !ok {
				t.Errorf("%s: image graph does not draw %s", x.repo, d)
			}
		}
		if x.repo == "team/app/web" && (drawn[victim] == analysis.NodeBlob || drawn[victim] == "") {
			t.Errorf("image graph draws the mentioned manifest as %q", drawn[victim])
		}
	}
	// What-if: without the tag, what it alone kept is freed: the truncated index
	// itself, what only it reached (not the mentioned manifest, which debian's
	// broken root keeps) and the blobs web's layer links name, which an unreadable
	// manifest in web kept; nothing else.
	links, _ := filepath.Glob(filepath.Join(f.root, "docker/registry/v2/repositories/team/app/web/_layers/sha256/*"))
	for _, l := range links {
		wantWeb[digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(l))] = true
	}
	after, err := gc.NewPlan(ctx, g, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithAllowMassDelete(true), gc.WithoutTags("team/app/web:half"))
	if err != nil {
		t.Fatal(err)
	}
	w := analysis.NewWhatIf(p, after, []string{"team/app/web:half"}, nil)
	before := map[digest.Digest]bool{}
	for _, b := range p.Blobs {
		before[b.Digest()] = true
	}
	freed := map[digest.Digest]bool{}
	for _, b := range after.Blobs {
		if !before[b.Digest()] {
			freed[b.Digest()] = true
		}
	}
	if !freed[h] || w.AdditionalBlobs != len(freed) {
		t.Errorf("untagging the truncated index frees %v (what-if %+v), want the index itself among them", freed, w)
	}
	for d := range freed {
		if !wantWeb[d] || wantDebian[d] {
			t.Errorf("what-if frees %s, which the tag did not keep alone", d)
		}
	}
}
