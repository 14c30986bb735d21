package synth

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPopulateReadBack populates registries for a few seeds and reads everything the
// summary says is there back through a fresh registry on the same directory.
func TestPopulateReadBack(t *testing.T) {
	ctx := context.Background()
	kinds := map[Kind]int{}
	var referrers, deleted, retagged, untagged, copies, uploads, nestedRepos int
	for seed := int64(1); seed <= 6; seed++ {
		root := tempDir(t)
		_, ns, err := NewFilesystem(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Populate(ctx, ns, seed, Small())
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range sum.Pushed {
			kinds[k] += n
		}
		referrers += len(sum.Referrers)
		deleted += len(sum.Deleted)
		retagged += sum.Retagged
		untagged += sum.Untagged
		copies += sum.Copies
		uploads += len(sum.Uploads)
		for _, a := range sum.Repos {
			for _, b := range sum.Repos {
				if len(b) > len(a) && b[:len(a)+1] == a+"/" {
					nestedRepos++
				}
			}
		}

		// A fresh driver and registry on the same tree: nothing cached from Populate.
		_, ns2, err := NewFilesystem(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		checkReadBack(t, ctx, ns2, sum)
	}
	t.Logf("kinds %v referrers %d deleted %d retagged %d untagged %d copies %d uploads %d nested repos %d",
		kinds, referrers, deleted, retagged, untagged, copies, uploads, nestedRepos)
	for _, k := range []Kind{KindSchema2, KindOCIManifest, KindManifestList, KindOCIIndex, KindReferrer} {
		if kinds[k] == 0 {
			t.Errorf("no %s manifest pushed over all seeds", k)
		}
	}
	if deleted == 0 || retagged == 0 || untagged == 0 || copies == 0 || uploads == 0 || nestedRepos == 0 {
		t.Errorf("mix not exercised: deleted %d retagged %d untagged %d copies %d uploads %d nested repos %d",
			deleted, retagged, untagged, copies, uploads, nestedRepos)
	}
}

func checkReadBack(t *testing.T, ctx context.Context, ns distribution.Namespace, sum *Summary) {
	t.Helper()
	var repos []string
	if err := ns.(distribution.RepositoryEnumerator).Enumerate(ctx, func(name string) error {
		repos = append(repos, name)
		return nil
	}); err != nil {
		t.Fatalf("seed %d: enumerate repositories: %v", sum.Seed, err)
	}
	slices.Sort(repos)
	if !slices.Equal(repos, sum.Repos) {
		t.Errorf("seed %d: repositories %v, summary %v", sum.Seed, repos, sum.Repos)
	}
	for _, name := range sum.Repos {
		named, err := reference.WithName(name)
		if err != nil {
			t.Fatal(err)
		}
		repo, err := ns.Repository(ctx, named)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tags, err := repo.Tags(ctx).All(ctx)
		if slices.Contains(sum.UntaggedRepos, name) {
			if !errors.As(err, new(distribution.ErrRepositoryUnknown)) {
				t.Errorf("seed %d: %s is pushed to by digest only, but listing its tags gives %v, %v", sum.Seed, name, tags, err)
			}
		} else if err != nil {
			t.Fatalf("seed %d: %s: tags: %v", sum.Seed, name, err)
		}
		if want := slices.Sorted(maps.Keys(sum.Tags[name])); !slices.Equal(tags, want) && !(len(tags) == 0 && len(want) == 0) {
			t.Errorf("seed %d: %s: tags %v, summary %v", sum.Seed, name, tags, want)
		}
		for tag, want := range sum.Tags[name] {
			desc, err := repo.Tags(ctx).Get(ctx, tag)
			if err != nil {
				t.Errorf("seed %d: %s:%s: %v", sum.Seed, name, tag, err)
				continue
			}
			if desc.Digest != want {
				t.Errorf("seed %d: %s:%s -> %s, summary %s", sum.Seed, name, tag, desc.Digest, want)
			}
			if _, ok := sum.Manifests[name][want]; !ok {
				t.Errorf("seed %d: %s:%s -> %s, which the summary does not list as a manifest", sum.Seed, name, tag, want)
			}
		}
		var enumerated []digest.Digest
		if err := ms.(distribution.ManifestEnumerator).Enumerate(ctx, func(d digest.Digest) error {
			enumerated = append(enumerated, d)
			return nil
		}); err != nil {
			t.Fatalf("seed %d: %s: enumerate manifests: %v", sum.Seed, name, err)
		}
		slices.Sort(enumerated)
		if want := slices.Sorted(maps.Keys(sum.Manifests[name])); !slices.Equal(enumerated, want) {
			t.Errorf("seed %d: %s: manifests %v, summary %v", sum.Seed, name, enumerated, want)
		}
		for d, kind := range sum.Manifests[name] {
			m, err := ms.Get(ctx, d)
			if err != nil {
				t.Errorf("seed %d: %s@%s (%s): %v", sum.Seed, name, d, kind, err)
				continue
			}
			checkKind(t, sum.Seed, name, d, kind, m)
			for _, ref := range m.References() {
				switch ref.MediaType {
				case schema2.MediaTypeManifest, v1.MediaTypeImageManifest, v1.MediaTypeImageIndex:
					if _, err := ms.Get(ctx, ref.Digest); err != nil {
						t.Errorf("seed %d: %s@%s: child %s: %v", sum.Seed, name, d, ref.Digest, err)
					}
				default:
					if _, err := repo.Blobs(ctx).Stat(ctx, ref.Digest); err != nil {
						t.Errorf("seed %d: %s@%s: blob %s: %v", sum.Seed, name, d, ref.Digest, err)
					}
				}
			}
		}
		for _, r := range sum.Deleted {
			if r.Repo != name {
				continue
			}
			if _, still := sum.Manifests[name][r.Digest]; still {
				t.Errorf("seed %d: deleted %s@%s still listed", sum.Seed, name, r.Digest)
			}
			if _, err := ms.Get(ctx, r.Digest); err == nil {
				t.Errorf("seed %d: deleted %s@%s still readable", sum.Seed, name, r.Digest)
			} else if !errors.As(err, new(distribution.ErrManifestUnknownRevision)) {
				t.Errorf("seed %d: deleted %s@%s: %v", sum.Seed, name, r.Digest, err)
			}
		}
	}
	for _, name := range sum.OrphanRepos {
		if slices.Contains(repos, name) {
			t.Errorf("seed %d: orphan %s is enumerated as a repository", sum.Seed, name)
		}
		named, _ := reference.WithName(name)
		repo, _ := ns.Repository(ctx, named)
		n := 0
		if err := repo.Blobs(ctx).(distribution.ManifestEnumerator).Enumerate(ctx, func(digest.Digest) error { n++; return nil }); err != nil || n == 0 {
			t.Errorf("seed %d: orphan %s: %d layer links, %v", sum.Seed, name, n, err)
		}
	}
	for _, u := range sum.Uploads {
		named, _ := reference.WithName(u.Repo)
		repo, _ := ns.Repository(ctx, named)
		bw, err := repo.Blobs(ctx).Resume(ctx, u.ID)
		if err != nil {
			t.Errorf("seed %d: upload %s/%s: %v", sum.Seed, u.Repo, u.ID, err)
			continue
		}
		if bw.Size() == 0 {
			t.Errorf("seed %d: upload %s/%s is empty", sum.Seed, u.Repo, u.ID)
		}
		bw.Close()
	}
	for _, r := range sum.Referrers {
		if r.Subject == "" || r.ArtifactType == "" {
			t.Errorf("seed %d: referrer %+v lacks subject or artifactType", sum.Seed, r)
		}
	}
}

func checkKind(t *testing.T, seed int64, repo string, d digest.Digest, kind Kind, m distribution.Manifest) {
	t.Helper()
	ok := false
	switch mm := m.(type) {
	case *schema2.DeserializedManifest:
		ok = kind == KindSchema2
	case *manifestlist.DeserializedManifestList:
		ok = kind == KindManifestList
	case *ocischema.DeserializedImageIndex:
		ok = kind == KindOCIIndex
	case *ocischema.DeserializedManifest:
		// distribution's struct has no subject/artifactType: look at the stored bytes.
		_, payload, _ := mm.Payload()
		var om v1.Manifest
		if err := jsonUnmarshal(payload, &om); err != nil {
			t.Errorf("seed %d: %s@%s: %v", seed, repo, d, err)
			return
		}
		if kind == KindReferrer {
			ok = om.Subject != nil && om.ArtifactType != ""
		} else {
			ok = kind == KindOCIManifest && om.Subject == nil
		}
	}
	if !ok {
		t.Errorf("seed %d: %s@%s: read back as %T, summary says %s", seed, repo, d, m, kind)
	}
}

func TestPopulateDeterministic(t *testing.T) {
	ctx := context.Background()
	var sums []*Summary
	for range 2 {
		_, ns, err := NewFilesystem(ctx, tempDir(t))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Populate(ctx, ns, 42, Small())
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sum)
	}
	a, b := sums[0], sums[1]
	if !maps.EqualFunc(a.Tags, b.Tags, maps.Equal) || !maps.EqualFunc(a.Manifests, b.Manifests, maps.Equal) ||
		!maps.Equal(a.Blobs, b.Blobs) || !slices.Equal(a.Referrers, b.Referrers) || !slices.Equal(a.Deleted, b.Deleted) {
		t.Errorf("seed 42 gave different registries on two runs")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestPopulateKnownDifferenceLayouts covers the layouts that are off in Small().
func TestPopulateKnownDifferenceLayouts(t *testing.T) {
	ctx := context.Background()
	cfg := Small()
	cfg.UntaggedRepos, cfg.OrphanRepos = 1, 1
	for seed := int64(1); seed <= 3; seed++ {
		root := tempDir(t)
		_, ns, err := NewFilesystem(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Populate(ctx, ns, seed, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.UntaggedRepos) != 1 || len(sum.OrphanRepos) != 1 || len(sum.Repos) != cfg.Repos+1 {
			t.Fatalf("seed %d: repos %v, untagged %v, orphans %v", seed, sum.Repos, sum.UntaggedRepos, sum.OrphanRepos)
		}
		_, ns2, err := NewFilesystem(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		checkReadBack(t, ctx, ns2, sum)
	}
}

// tempDir prefers tmpfs: the filesystem driver fsyncs every write.
func tempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "regsweep-synth-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
