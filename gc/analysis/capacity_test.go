package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// capRegistry is a registry tree on disk for the capacity tests, and its index.
type capRegistry struct {
	name string
	root string // the registry root (holds docker/registry/v2)
	idx  *graph.Index
	now  time.Time // what plans count from
}

func (r *capRegistry) v2(parts ...string) string {
	return filepath.Join(append([]string{r.root, "docker", "registry", "v2"}, parts...)...)
}

// capAge sets every file time under root to at.
func capAge(t *testing.T, root string, at time.Time) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, at, at)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func capIndex(t *testing.T, root string) *graph.Index {
	t.Helper()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	drv, _, err := synth.NewFilesystem(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := graph.Build(context.Background(), drv, idx, graph.WithWorkers(4), graph.WithDeferredStats(false)); err != nil {
		t.Fatal(err)
	}
	return idx
}

// capRegistries returns the sample registry aged by two days and the small synthetic
// registries of seeds 1..3 (aged likewise).
func capRegistries(t *testing.T) []*capRegistry {
	t.Helper()
	now := time.Now()
	var out []*capRegistry
	root := filepath.Join(t.TempDir(), "registry")
	if err := os.CopyFS(root, os.DirFS("../../testdata/sample/registry")); err != nil {
		t.Fatal(err)
	}
	capAge(t, root, now.Add(-48*time.Hour))
	out = append(out, &capRegistry{name: "sample", root: root, idx: capIndex(t, root), now: now})
	for seed := int64(1); seed <= 3; seed++ {
		root := t.TempDir()
		_, ns, err := synth.NewFilesystem(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := synth.Populate(context.Background(), ns, seed, synth.Small()); err != nil {
			t.Fatal(err)
		}
		capAge(t, root, now.Add(-10*24*time.Hour))
		out = append(out, &capRegistry{name: fmt.Sprintf("synth-%d", seed), root: root, idx: capIndex(t, root), now: now})
	}
	return out
}

func (r *capRegistry) plan(t *testing.T, m bool, opts ...gc.Option) *gc.Plan {
	t.Helper()
	opts = append([]gc.Option{gc.WithDeleteUntagged(m), gc.WithNow(r.now)}, opts...)
	p, err := gc.NewPlan(context.Background(), r.idx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// blobSize stats a blob's data on disk; ok is false when it is absent.
func (r *capRegistry) blobSize(t *testing.T, d digest.Digest) (int64, bool) {
	t.Helper()
	fi, err := os.Stat(r.v2("blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size(), true
}

// walkImage independently sums the distinct present blobs a manifest reaches, by
// reading manifests from disk as generic JSON.
func (r *capRegistry) walkImage(t *testing.T, d digest.Digest, seen map[digest.Digest]bool) (int64, int) {
	t.Helper()
	if seen[d] {
		return 0, 0
	}
	seen[d] = true
	size, ok := r.blobSize(t, d)
	if !ok {
		return 0, 0
	}
	bytes, blobs := size, 1
	b, err := os.ReadFile(r.v2("blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config    *struct{ Digest digest.Digest }
		Layers    []struct{ Digest digest.Digest }
		Manifests []struct{ Digest digest.Digest }
		FSLayers  []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s: %v", d, err)
	}
	var leaves []digest.Digest
	if m.Config != nil {
		leaves = append(leaves, m.Config.Digest)
	}
	for _, l := range m.Layers {
		leaves = append(leaves, l.Digest)
	}
	for _, l := range m.FSLayers {
		leaves = append(leaves, l.BlobSum)
	}
	for _, l := range leaves {
		if seen[l] {
			continue
		}
		seen[l] = true
		if s, ok := r.blobSize(t, l); ok {
			bytes += s
			blobs++
		}
	}
	for _, c := range m.Manifests {
		b, n := r.walkImage(t, c.Digest, seen)
		bytes += b
		blobs += n
	}
	return bytes, blobs
}

// images lists, per repository, "tag tag2=digest:bytes:blobs" for every servable tag,
// computed from the files on disk.
func (r *capRegistry) images(t *testing.T) (map[string][]string, int64, int) {
	t.Helper()
	out := map[string][]string{}
	var logical int64
	var count int
	repos := r.v2("repositories")
	byManifest := map[string]map[digest.Digest][]string{}
	err := filepath.WalkDir(repos, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repos, p)
		rel = filepath.ToSlash(rel)
		repo, rest, ok := strings.Cut(rel, "/_manifests/tags/")
		if !ok || !strings.HasSuffix(rest, "/current/link") {
			return nil
		}
		tag := strings.TrimSuffix(rest, "/current/link")
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		d := digest.Digest(b)
		if _, err := os.Stat(filepath.Join(repos, repo, "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link")); err != nil {
			return nil // dangling: the registry cannot serve it
		}
		if byManifest[repo] == nil {
			byManifest[repo] = map[digest.Digest][]string{}
		}
		byManifest[repo][d] = append(byManifest[repo][d], tag)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for repo, ms := range byManifest {
		for d, tags := range ms {
			slices.Sort(tags)
			bytes, blobs := r.walkImage(t, d, map[digest.Digest]bool{})
			out[repo] = append(out[repo], fmt.Sprintf("%s=%s:%d:%d", strings.Join(tags, " "), d, bytes, blobs))
			logical += bytes // one image, however many tags name it
			count++
		}
		slices.Sort(out[repo])
	}
	return out, logical, count
}

// diskBlobBytes sums the size of every blob data file below dir.
func diskBlobBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Name() != "data" {
			return err
		}
		fi, err := de.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sweptBytes sweeps a copy of root as regsweep gc would at now and returns the
// bytes of blob data it removed from the disk.
func sweptBytes(t *testing.T, root string, now time.Time, m bool) int64 {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(cp, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	// CopyFS does not keep times: age the copy as the original.
	old := now.Add(-10 * 24 * time.Hour)
	capAge(t, cp, old)
	blobs := filepath.Join(cp, "docker", "registry", "v2", "blobs")
	before := diskBlobBytes(t, blobs)
	ctx := context.Background()
	drv := storage.NewFilesystem(cp)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(m), gc.WithNow(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sweep.Run(ctx, drv, p); err != nil {
		t.Fatal(err)
	}
	return before - diskBlobBytes(t, blobs)
}

// TestCapacity checks every number of the capacity view against the plan's summary
// and against an independent walk of the files on disk.
func TestCapacity(t *testing.T) {
	for _, r := range capRegistries(t) {
		for _, m := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/m=%v", r.name, m), func(t *testing.T) {
				p := r.plan(t, m)
				c, err := analysis.NewCapacity(context.Background(), p, analysis.WithTopN(1000))
				if err != nil {
					t.Fatal(err)
				}
				// Totals from the disk, not from the plan they are computed with: every
				// blob file, and what a real sweep of a copy frees.
				total, freed := diskBlobBytes(t, r.v2("blobs")), sweptBytes(t, r.root, r.now, m)
				if c.TotalBytes != total || c.GarbageBytes != freed || c.GarbageBytes == 0 ||
					c.LiveBytes+c.GarbageBytes+c.KeptBytes != c.TotalBytes {
					t.Errorf("totals %d/%d/%d/%d; on disk %d bytes, a sweep frees %d", c.TotalBytes, c.LiveBytes, c.GarbageBytes, c.KeptBytes, total, freed)
				}

				// Histogram and age from the blob files themselves.
				wantHist := map[int64][2]int64{}
				wantAge := map[string][2]int64{}
				err = filepath.WalkDir(r.v2("blobs"), func(p string, de fs.DirEntry, err error) error {
					if err != nil || de.IsDir() || de.Name() != "data" {
						return err
					}
					fi, err := de.Info()
					if err != nil {
						return err
					}
					lo := int64(0)
					if fi.Size() > 0 {
						lo = 1
						for lo*4 <= fi.Size() {
							lo *= 4
						}
					}
					h := wantHist[lo]
					wantHist[lo] = [2]int64{h[0] + 1, h[1] + fi.Size()}
					label := "<1d"
					switch age := r.now.Sub(fi.ModTime()); {
					case age >= 365*24*time.Hour:
						label = "older"
					case age >= 90*24*time.Hour:
						label = "<365d"
					case age >= 30*24*time.Hour:
						label = "<90d"
					case age >= 7*24*time.Hour:
						label = "<30d"
					case age >= 24*time.Hour:
						label = "<7d"
					}
					a := wantAge[label]
					wantAge[label] = [2]int64{a[0] + 1, a[1] + fi.Size()}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				gotHist := map[int64][2]int64{}
				for i, b := range c.SizeHistogram {
					if b.Min > 0 && b.Max != b.Min*4 || b.Min == 0 && b.Max != 1 {
						t.Errorf("bucket %+v is not a power-of-4 span", b)
					}
					if i > 0 && b.Min != c.SizeHistogram[i-1].Max {
						t.Errorf("bucket %+v does not follow %+v", b, c.SizeHistogram[i-1])
					}
					if b.Blobs > 0 {
						gotHist[b.Min] = [2]int64{int64(b.Blobs), b.Bytes}
					}
				}
				if d := cmp.Diff(wantHist, gotHist); d != "" {
					t.Errorf("size histogram (-disk +capacity):\n%s", d)
				}
				if n := len(c.SizeHistogram); n == 0 || c.SizeHistogram[0].Blobs == 0 || c.SizeHistogram[n-1].Blobs == 0 {
					t.Errorf("histogram not trimmed to its non-empty range: %+v", c.SizeHistogram)
				}
				gotAge := map[string][2]int64{}
				for _, a := range c.Age {
					if a.Blobs > 0 {
						gotAge[a.Label] = [2]int64{int64(a.Blobs), a.Bytes}
					}
				}
				if d := cmp.Diff(wantAge, gotAge); d != "" {
					t.Errorf("age (-disk +capacity):\n%s", d)
				}

				// Repositories and images.
				if len(c.Repositories) != len(p.Repositories) {
					t.Fatalf("%d repositories, plan has %d", len(c.Repositories), len(p.Repositories))
				}
				gotImages := map[string][]string{}
				for i, rc := range c.Repositories {
					if rc.RepoStats != p.Repositories[i] {
						t.Errorf("repository %d = %+v, plan %+v", i, rc.RepoStats, p.Repositories[i])
					}
					for j, im := range rc.LargestImages {
						if j > 0 && im.Bytes > rc.LargestImages[j-1].Bytes {
							t.Errorf("%s: images not largest first", rc.Name)
						}
						if im.Bytes > rc.Bytes && !m {
							t.Errorf("%s: image %v (%d) larger than the repository (%d)", rc.Name, im.Tags, im.Bytes, rc.Bytes)
						}
						gotImages[rc.Name] = append(gotImages[rc.Name], fmt.Sprintf("%s=%s:%d:%d", strings.Join(im.Tags, " "), im.Digest, im.Bytes, im.Blobs))
					}
					slices.Sort(gotImages[rc.Name])
				}
				wantImages, logical, images := r.images(t)
				if d := cmp.Diff(wantImages, gotImages); d != "" {
					t.Errorf("images (-disk +capacity):\n%s", d)
				}
				if c.LogicalBytes != logical || c.Images != images || logical == 0 {
					t.Errorf("logical bytes %d over %d images, want %d over %d", c.LogicalBytes, c.Images, logical, images)
				}
				if want := float64(logical) / float64(total); c.DedupRatio != want {
					t.Errorf("dedup ratio %v, want %v", c.DedupRatio, want)
				}

				// Rankings.
				check := func(what string, got []analysis.RepoBytes, v func(gc.RepoStats) int64) {
					var want []analysis.RepoBytes
					for _, r := range p.Repositories {
						if v(r) > 0 {
							want = append(want, analysis.RepoBytes{Name: r.Name, Bytes: v(r)})
						}
					}
					slices.SortStableFunc(want, func(a, b analysis.RepoBytes) int {
						if a.Bytes != b.Bytes {
							return int(b.Bytes - a.Bytes)
						}
						return strings.Compare(a.Name, b.Name)
					})
					if d := cmp.Diff(want, got); d != "" {
						t.Errorf("top by %s (-want +got):\n%s", what, d)
					}
				}
				check("bytes", c.Top.ByBytes, func(r gc.RepoStats) int64 { return r.Bytes })
				check("unique", c.Top.ByUniqueBytes, func(r gc.RepoStats) int64 { return r.UniqueBytes })
				check("reclaimable", c.Top.ByReclaimableBytes, func(r gc.RepoStats) int64 { return r.ReclaimableBytes })
			})
		}
	}
}

func TestCapacityTopN(t *testing.T) {
	r := capRegistries(t)[1]
	p := r.plan(t, true)
	c, err := analysis.NewCapacity(context.Background(), p, analysis.WithTopN(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Top.ByBytes) != 2 {
		t.Errorf("top by bytes: %d entries, want 2", len(c.Top.ByBytes))
	}
	for _, rc := range c.Repositories {
		if len(rc.LargestImages) > 2 {
			t.Errorf("%s lists %d images, want at most 2", rc.Name, len(rc.LargestImages))
		}
	}
	if _, err := analysis.NewCapacity(context.Background(), p, analysis.WithTopN(0)); err == nil {
		t.Error("WithTopN(0) accepted")
	}
}

// TestCapacityWhatIfDeleteRepo: deleting a repository frees exactly its unique bytes
// (docs/design.md's definition), in default mode where every revision link is a root.
func TestCapacityWhatIfDeleteRepo(t *testing.T) {
	for _, r := range capRegistries(t) {
		base := r.plan(t, false)
		for _, rs := range base.Repositories {
			after := r.plan(t, false, gc.WithoutRepos(rs.Name))
			w := analysis.NewWhatIf(base, after, nil, []string{rs.Name})
			if w.AdditionalBytes != rs.UniqueBytes {
				t.Errorf("%s: deleting %s frees %d more bytes, its unique bytes are %d", r.name, rs.Name, w.AdditionalBytes, rs.UniqueBytes)
			}
			if w.FreedBytesAfter-w.FreedBytesNow != w.AdditionalBytes || w.FreedBlobsAfter-w.FreedBlobsNow != w.AdditionalBlobs {
				t.Errorf("%s: what-if %+v does not add up", r.name, w)
			}
		}
	}
}

// TestCapacityWhatIfUntag: untagging debian:12 frees its image except the base layer
// that the other repositories share.
func TestCapacityWhatIfUntag(t *testing.T) {
	r := capRegistries(t)[0]
	base := r.plan(t, true)
	after := r.plan(t, true, gc.WithoutTags("library/debian:12"))
	w := analysis.NewWhatIf(base, after, []string{"library/debian:12"}, nil)
	c, err := analysis.NewCapacity(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	var image analysis.ImageInfo
	for _, rc := range c.Repositories {
		if rc.Name == "library/debian" {
			image = rc.LargestImages[0]
		}
	}
	shared, _ := r.blobSize(t, sharedBase(t, r))
	if w.AdditionalBytes != image.Bytes-shared || w.AdditionalBlobs != image.Blobs-1 {
		t.Errorf("untag frees %d bytes in %d blobs; image %d bytes in %d blobs, shared base layer %d bytes",
			w.AdditionalBytes, w.AdditionalBlobs, image.Bytes, image.Blobs, shared)
	}
	if w.UntagRefs[0] != "library/debian:12" || len(w.DeleteRepos) != 0 {
		t.Errorf("what-if %+v", w)
	}
}

// sharedBase is the base layer of debian:12, which team/app/web links and uses too.
func sharedBase(t *testing.T, r *capRegistry) digest.Digest {
	t.Helper()
	b, err := os.ReadFile(r.v2("repositories", "library", "debian", "_manifests", "tags", "12", "current", "link"))
	if err != nil {
		t.Fatal(err)
	}
	d := digest.Digest(b)
	mb, err := os.ReadFile(r.v2("blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct{ Digest digest.Digest }
	}
	if err := json.Unmarshal(mb, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("debian:12 manifest: %v %s", err, mb)
	}
	if _, err := os.Stat(r.v2("repositories", "team", "app", "web", "_layers", "sha256", m.Layers[0].Digest.Encoded(), "link")); err != nil {
		t.Fatalf("the sample changed: web no longer links debian's base layer: %v", err)
	}
	return m.Layers[0].Digest
}
