package verify_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc/verify"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// check scans root as regsweep verify does (every blob stated, every link read)
// and checks it.
func check(t *testing.T, root string, m, checksums bool) *verify.Report {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	drv := storage.NewFilesystem(root)
	if err := graph.Build(ctx, drv, idx, graph.WithDeferredStats(false), graph.WithVerifyLinks(true)); err != nil {
		t.Fatal(err)
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := verify.Check(ctx, g, verify.Options{DeleteUntagged: m, KeepReferrers: true, Read: verify.Reader(drv)})
	if err != nil {
		t.Fatal(err)
	}
	if checksums {
		if err := r.Rehash(ctx, drv, g, 4, nil); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// image reads what tag names: its manifest, and for an index its children.
func manifestOf(t *testing.T, root string, d digest.Digest) v1.Manifest {
	t.Helper()
	var m v1.Manifest
	regtest.ReadJSON(t, root, d, &m)
	return m
}

func tagDigest(t *testing.T, root, repo, tag string) digest.Digest {
	return regtest.ReadLink(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: tag})
}

func rmBlob(t *testing.T, root string, d digest.Digest) {
	t.Helper()
	if err := os.Remove(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d}))); err != nil {
		t.Fatal(err)
	}
}

// find returns the problems of kind about digest d.
func find(r *verify.Report, kind string, d digest.Digest) []verify.Problem {
	var out []verify.Problem
	for _, p := range r.Problems {
		if p.Kind == kind && p.Digest == d.String() {
			out = append(out, p)
		}
	}
	return out
}

func dump(t *testing.T, r *verify.Report) {
	for _, p := range r.Problems {
		t.Logf("  %s (live %v)", p, p.Live)
	}
}

// The sample and generated registries, pushed through distribution's API, are clean
// in both modes.
func TestVerifyCleanRegistries(t *testing.T) {
	roots := map[string]string{"sample": regtest.Sample(t)}
	for seed := int64(1); seed <= 4; seed++ {
		root := t.TempDir()
		_, ns, err := synth.NewFilesystem(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := synth.Populate(context.Background(), ns, seed, synth.Small()); err != nil {
			t.Fatal(err)
		}
		roots[fmt.Sprint("synth-", seed)] = root
	}
	for name, root := range roots {
		for _, m := range []bool{false, true} {
			r := check(t, root, m, true)
			if !r.Clean() || r.Summary.Problems != 0 {
				t.Errorf("%s -m=%v: %d problems (%d live)", name, m, r.Summary.Problems, r.Summary.LiveProblems)
				dump(t, r)
			}
			if r.Summary.Roots == 0 || r.Summary.Reached == 0 || r.Summary.BlobsHashed != r.Summary.Blobs || r.Summary.BytesHashed == 0 {
				t.Errorf("%s -m=%v: summary %+v", name, m, r.Summary)
			}
		}
	}
}

// Each fault is reported with its kind, repository and the tags it breaks,
// worked out from the manifests on disk.
func TestVerifyFaults(t *testing.T) {
	debian := func(root string) v1.Manifest { return manifestOf(t, root, tagDigest(t, root, "library/debian", "12")) }
	web := func(root string) v1.Manifest {
		return manifestOf(t, root, tagDigest(t, root, "team/app/web", "latest"))
	}
	apiChildren := func(root string) []v1.Descriptor {
		var idx v1.Index
		regtest.ReadJSON(t, root, tagDigest(t, root, "team/app/api", "v1"), &idx)
		return idx.Manifests
	}
	for _, tc := range []struct {
		name   string
		m      bool
		inject func(t *testing.T, root string) (kind string, d digest.Digest, repo string, tags []string)
	}{
		{"missing layer", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			l := debian(root).Layers[1].Digest // debian 12.1's own layer
			rmBlob(t, root, l)
			return verify.MissingBlob, l, "library/debian", []string{"12"}
		}},
		{"missing config", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			c := web(root).Config.Digest // latest and multi name the same image
			rmBlob(t, root, c)
			return verify.MissingBlob, c, "team/app/web", []string{"latest", "multi"}
		}},
		{"missing index child", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			c := apiChildren(root)[1].Digest
			rmBlob(t, root, c)
			return verify.MissingManifest, c, "team/app/api", []string{"v1"}
		}},
		{"missing manifest of a tag", false, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			d := tagDigest(t, root, "library/debian", "12")
			rmBlob(t, root, d)
			return verify.MissingManifest, d, "library/debian", []string{"12"}
		}},
		{"missing layer link", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			l := manifestOf(t, root, apiChildren(root)[0].Digest).Layers[1].Digest // api binary amd64
			p := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: l}))
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return verify.MissingLink, l, "team/app/api", []string{"v1"}
		}},
		{"missing blob of a referrer (a signature)", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			var sig digest.Digest
			for _, f := range regtest.Files(t, root) {
				s, err := storage.Parse("/" + f)
				if err != nil || s.Kind != storage.RevisionLink || s.Repo != "team/app/api" {
					continue
				}
				if m := manifestOf(t, root, s.Digest); m.Subject != nil {
					sig = m.Layers[0].Digest
				}
			}
			if sig == "" {
				t.Fatal("no signature in the sample")
			}
			rmBlob(t, root, sig)
			return verify.MissingBlob, sig, "team/app/api", []string{"v1"}
		}},
		{"corrupt tag link", true, func(t *testing.T, root string) (string, digest.Digest, string, []string) {
			regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "latest"}, []byte("not a digest"))
			return verify.CorruptLink, "", "team/app/web", nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := regtest.Sample(t)
			kind, d, repo, tags := tc.inject(t, root)
			r := check(t, root, tc.m, false)
			if r.Clean() {
				t.Fatalf("clean after %s", tc.name)
			}
			ps := find(r, kind, d)
			if len(ps) != 1 {
				t.Fatalf("%d %s problems for %s, want 1", len(ps), kind, d)
			}
			p := ps[0]
			if p.Repository != repo || !slices.Equal(p.Tags, tags) || !p.Live || p.Path == "" || p.Detail == "" {
				t.Errorf("problem %+v\nwant repository %s, tags %v, live", p, repo, tags)
			}
		})
	}
}

// A flipped byte: --checksums names every repository and tag whose image has the
// blob; in default mode the untagged manifests too.
func TestVerifyChecksums(t *testing.T) {
	root := regtest.Sample(t)
	base := manifestOf(t, root, tagDigest(t, root, "library/debian", "12")).Layers[0].Digest // in every sample image
	p := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: base}))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := check(t, root, true, false); !r.Clean() {
		t.Errorf("without --checksums a flipped byte is invisible, yet: %+v", r.Problems)
	}
	r := check(t, root, true, true)
	got := map[string][]string{}
	for _, p := range find(r, verify.CorruptBlob, base) {
		if !p.Live {
			t.Errorf("not live: %+v", p)
		}
		got[p.Repository] = p.Tags
	}
	want := map[string][]string{"library/debian": {"12"}, "team/app/api": {"v1"}, "team/app/web": {"latest", "multi"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("corrupt base layer reported for %v, want %v", got, want)
		dump(t, r)
	}
	// Default mode: debian's untagged 12.0 image uses it too.
	r = check(t, root, false, true)
	for _, p := range find(r, verify.CorruptBlob, base) {
		if p.Repository == "library/debian" && len(p.Revisions) != 1 {
			t.Errorf("default mode: revisions %v, want debian's untagged manifest", p.Revisions)
		}
	}
}

// A layer link to a blob with no data that no root needs is listed, not live; a
// missing layer a manifest says lives elsewhere (urls) is not a problem.
func TestVerifyNotLive(t *testing.T) {
	root := regtest.Sample(t)
	gone := digest.FromString("gone")
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/web", Digest: gone}, []byte(gone))
	// A Windows-style image with a foreign layer.
	foreign := digest.FromString("foreign layer")
	cfg := regtest.PutBlob(t, root, "win/app", []byte(`{"os":"windows"}`))
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":16},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":%q,"size":1000,"urls":["https://mcr.microsoft.com/x"]}]}`,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.container.image.v1+json", cfg, foreign)
	regtest.PutManifest(t, root, "win/app", "ltsc", []byte(m))
	regtest.Age(t, root, time.Now().Add(-time.Hour))
	r := check(t, root, true, false)
	if !r.Clean() {
		t.Errorf("not clean:")
		dump(t, r)
	}
	if ps := find(r, verify.DanglingLink, gone); len(ps) != 1 || ps[0].Live || ps[0].Repository != "team/app/web" {
		t.Errorf("dangling link: %+v", ps)
	}
	if ps := find(r, verify.ForeignLayer, foreign); len(ps) != 1 || ps[0].Live || !strings.Contains(ps[0].Detail, "urls") {
		t.Errorf("foreign layer: %+v", ps)
	}
}

// closureOf reads, from the files, every digest a manifest needs: itself, its
// config and layers, and its children's.
func closureOf(t *testing.T, root string, d digest.Digest, out map[digest.Digest]bool) {
	if out[d] {
		return
	}
	out[d] = true
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	regtest.ReadJSON(t, root, d, &m)
	if m.Config != nil {
		out[m.Config.Digest] = true
	}
	for _, l := range m.Layers {
		out[l.Digest] = true
	}
	for _, c := range m.Manifests {
		closureOf(t, root, c.Digest, out)
	}
}

// On generated registries: a layer or config of some tag's image is removed; the
// problem names, per repository, exactly the tags whose images need it, as the
// files say.
func TestVerifyFaultsOnGeneratedRegistries(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			_, ns, err := synth.NewFilesystem(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := synth.Populate(ctx, ns, seed, synth.Small())
			if err != nil {
				t.Fatal(err)
			}
			need := map[string]map[string]map[digest.Digest]bool{} // repo -> tag -> closure
			var victim digest.Digest
			for _, repo := range sum.Repos {
				for _, tag := range slices.Sorted(maps.Keys(sum.Tags[repo])) {
					d := sum.Tags[repo][tag]
					c := map[digest.Digest]bool{}
					closureOf(t, root, d, c)
					if need[repo] == nil {
						need[repo] = map[string]map[digest.Digest]bool{}
					}
					need[repo][tag] = c
					if victim == "" {
						for _, x := range slices.Sorted(maps.Keys(c)) {
							if x != d && sum.Blobs[x] > 0 {
								victim = x // a config or layer (or a child manifest)
								break
							}
						}
					}
				}
			}
			if victim == "" {
				t.Skip("no tagged image")
			}
			if err := os.RemoveAll(filepath.Dir(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: victim})))); err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{}
			for repo, tags := range need {
				for tag, c := range tags {
					if c[victim] {
						want[repo] = append(want[repo], tag)
					}
				}
				slices.Sort(want[repo])
			}
			r := check(t, root, true, false)
			got := map[string][]string{}
			for _, p := range r.Problems {
				if p.Digest == victim.String() && p.Live {
					got[p.Repository] = p.Tags
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("removed %s: problems name %v, the files say %v", victim, got, want)
				dump(t, r)
			}
			if r.Clean() {
				t.Error("clean")
			}
		})
	}
}
