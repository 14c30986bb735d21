package difftest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	dstorage "github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// The incremental index against a fresh one, while the registry changes between
// runs: pushes, a tag moved, a manifest deleted the way the API does, a sweep and the
// re-push of a digest it deleted, a manifest blob replaced by another file of the
// same name. After every change the plan from the index kept across runs (manifests
// parsed from its cache) equals the plan from a fresh index without the cache, in
// every mode; and the kept index reads only what changed. On the filesystem, and on
// S3, where manifests are also read early, before the blob store is listed (a second
// passes before each build there: an early read's parse is cached only for a blob
// written a second or more before it).
func TestIncrementalIndexEqualsFresh(t *testing.T) {
	for seed := int64(301); seed <= 306; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			incrementalSeed(t, seed, nil)
		})
	}
	// The S3 drivers are made before any runs: the SDK's session sets up
	// http.DefaultClient's transport as it is made (a race with requests under way).
	stores := map[int64]driver.StorageDriver{}
	for seed := int64(311); seed <= 313; seed++ {
		_, stores[seed] = benchenv.StartS3(t, "/")
	}
	for seed := int64(311); seed <= 313; seed++ {
		t.Run(fmt.Sprintf("s3/%d", seed), func(t *testing.T) {
			t.Parallel()
			incrementalSeed(t, seed, stores[seed])
		})
	}
}

type repoImage struct {
	repo      string
	digest    digest.Digest
	mediaType string
	payload   []byte
	blobs     map[digest.Digest][]byte
}

// incrementalSeed runs the test on a registry filled from seed, in s3 (distribution's
// s3 driver) or, if nil, on the filesystem.
func incrementalSeed(t *testing.T, seed int64, s3 driver.StorageDriver) {
	ctx := context.Background()
	onS3 := s3 != nil
	var (
		store driver.StorageDriver // distribution's driver, for the test's own reads and writes
		drv   driver.StorageDriver // what regsweep scans and sweeps
		ns    distribution.Namespace
		err   error
	)
	if onS3 {
		store, drv = s3, s3
		ns, err = dstorage.NewRegistry(ctx, store, dstorage.EnableDelete)
	} else {
		root := filepath.Join(tempDir(t), "registry")
		store, ns, err = synth.NewFilesystem(ctx, root)
		drv = storage.NewFilesystem(root)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	sum, err := synth.Populate(ctx, ns, seed, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := graph.Open(filepath.Join(tempDir(t), "kept"))
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	step := 0
	compare := func(what string, wantRead func(graph.Meta) bool) {
		t.Helper()
		step++
		if onS3 {
			time.Sleep(1100 * time.Millisecond)
		}
		if err := graph.Build(ctx, drv, kept, graph.WithWorkers(8)); err != nil {
			t.Fatal(err)
		}
		meta, _ := kept.Meta()
		fresh, err := graph.Open(filepath.Join(tempDir(t), fmt.Sprintf("fresh%d", step)))
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		if err := graph.Build(ctx, drv, fresh, graph.WithWorkers(8), graph.WithManifestCache(false)); err != nil {
			t.Fatal(err)
		}
		freshMeta, _ := fresh.Meta()
		if wantRead != nil && !wantRead(meta) {
			t.Errorf("%s: the kept index read %d manifests (%d early), %d from the cache (a fresh build read %d)", what, meta.ManifestsRead, meta.ManifestsEarly, meta.ManifestsCached, freshMeta.ManifestsRead)
		}
		now := time.Now().Add(time.Hour)
		for _, mode := range []struct {
			name string
			opts []gc.Option
		}{
			{"default", nil},
			{"-m", []gc.Option{gc.WithDeleteUntagged(true)}},
			{"-m drop referrers", []gc.Option{gc.WithDeleteUntagged(true), gc.WithKeepReferrers(false)}},
		} {
			opts := append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(now), gc.WithAllowMassDelete(true)}, mode.opts...)
			a, err := gc.NewPlan(ctx, kept, opts...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := gc.NewPlan(ctx, fresh, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(planView(b), planView(a)); diff != "" {
				t.Errorf("%s, %s: the incremental plan differs from a fresh one (-fresh +incremental):\n%s", what, mode.name, diff)
			}
		}
	}
	// How many manifests S3 builds read early depends on timing (on a loaded machine
	// the blob store can be listed before any early read starts): not asserted here
	// (TestEarlyReadsS3 holds the blob store to make them happen).
	compare("unchanged", func(m graph.Meta) bool { return m.ManifestsCached == 0 })
	compare("rerun", func(m graph.Meta) bool { return m.ManifestsRead == 0 && m.ManifestsCached == m.Manifests })

	// Pushes into new and existing repositories: only their manifests are read.
	more := cfg
	more.Repos, more.DeleteFraction, more.UntagFraction, more.RetagFraction = 2, 0, 0, 0
	before, _ := kept.Meta()
	if _, err := synth.Populate(ctx, ns, seed+1000, more); err != nil {
		t.Fatal(err)
	}
	compare("after pushes", func(m graph.Meta) bool {
		return m.ManifestsRead > 0 && m.ManifestsRead == m.Manifests-before.Manifests
	})

	// A tag moved to another manifest of its repository.
	repos := slices.Sorted(maps.Keys(sum.Tags))
	repo := repos[0]
	tags := slices.Sorted(maps.Keys(sum.Tags[repo]))
	var other digest.Digest
	for d := range sum.Manifests[repo] {
		if d != sum.Tags[repo][tags[0]] {
			other = d
			break
		}
	}
	if other != "" {
		r := regtest.Repository(t, ns, repo)
		mt := manifestMediaType(t, store, other)
		if err := r.Tags(ctx).Tag(ctx, tags[0], v1.Descriptor{Digest: other, MediaType: mt}); err != nil {
			t.Fatal(err)
		}
	}
	compare("after a tag moved", func(m graph.Meta) bool { return m.ManifestsRead == 0 })

	// A tagged image deleted the way the API does: untagged, revision link gone.
	victim := saveRepoImage(t, store, repo, sum.Tags[repo][tags[len(tags)-1]])
	apiDelete(t, ns, repo, victim.digest)
	compare("after an API delete", func(m graph.Meta) bool { return m.ManifestsRead == 0 })

	// A sweep in -m mode from the kept index's plan, then the deleted digest pushed
	// again: its blob is a new file (a new time), so it is read again.
	p, err := gc.NewPlan(ctx, kept, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	compare("after a sweep", func(m graph.Meta) bool { return m.ManifestsRead == 0 })
	victim.push(t, ns)
	compare("after a deleted digest pushed again", nil)

	// A manifest blob replaced by another file of the same name.
	var target digest.Digest
	for d := range sum.Manifests[repos[len(repos)-1]] {
		if _, err := store.Stat(ctx, "/"+blobDataPath(d)); err == nil {
			target = d
			break
		}
	}
	if target != "" {
		if err := store.PutContent(ctx, "/"+blobDataPath(target), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)); err != nil {
			t.Fatal(err)
		}
		compare("after a manifest blob was replaced", func(m graph.Meta) bool { return m.ManifestsRead == 1 })
	}
}

// planView is what a plan decides, without what differs between two indexes of
// the same storage (ids, the time of the scan).
func planView(p *gc.Plan) string {
	view := struct {
		Paths    []string
		Summary  gc.Summary
		Kept     []gc.KeptItem
		Warnings int
		Blocked  int
		Repos    []gc.RepoStats
	}{slices.Sorted(maps.Keys(p.Paths())), p.Summary, p.Kept, len(p.Warnings), len(p.Blocked), p.Repositories}
	b, _ := json.MarshalIndent(view, "", " ")
	return string(b)
}

func manifestMediaType(t *testing.T, store driver.StorageDriver, d digest.Digest) string {
	t.Helper()
	b, err := store.GetContent(context.Background(), "/"+blobDataPath(d))
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	json.Unmarshal(b, &head)
	return head.MediaType
}

// saveRepoImage keeps the bytes of manifest d and of the blobs it references (not
// index children: the test picks what it finds), to push them again later.
func saveRepoImage(t *testing.T, store driver.StorageDriver, repo string, d digest.Digest) *repoImage {
	t.Helper()
	payload, err := store.GetContent(context.Background(), "/"+blobDataPath(d))
	if err != nil {
		t.Fatal(err)
	}
	img := &repoImage{repo: repo, digest: d, payload: payload, blobs: map[digest.Digest][]byte{}}
	parsed, err := graph.ParseManifest(payload)
	if err != nil {
		t.Fatal(err)
	}
	img.mediaType = parsed.MediaType
	for _, r := range parsed.Refs {
		if r.Kind == graph.EdgeSubject || r.Kind == graph.EdgeChild {
			continue
		}
		if b, err := store.GetContent(context.Background(), "/"+blobDataPath(r.Digest)); err == nil {
			img.blobs[r.Digest] = b
		}
	}
	return img
}

// push uploads the blobs, then the manifest (the registry checks its references),
// then a tag, as a client does. An index whose children are gone is pushed as blob
// only: distribution refuses the manifest, and the test still has a re-pushed blob.
func (img *repoImage) push(t *testing.T, ns distribution.Namespace) {
	t.Helper()
	ctx := context.Background()
	r := regtest.Repository(t, ns, img.repo)
	for d, b := range img.blobs {
		w, err := r.Blobs(ctx).Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		if _, err := w.Commit(ctx, v1.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := distribution.UnmarshalManifest(img.mediaType, img.payload)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Put(ctx, m); err != nil {
		t.Logf("push %s@%s again: %v (pushing its bytes as a blob instead)", img.repo, img.digest, err)
		w, err := r.Blobs(ctx).Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(img.payload)
		if _, err := w.Commit(ctx, v1.Descriptor{Digest: img.digest, Size: int64(len(img.payload))}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := r.Tags(ctx).Tag(ctx, "again", v1.Descriptor{Digest: img.digest, MediaType: img.mediaType}); err != nil {
		t.Fatal(err)
	}
}

// apiDelete deletes repo@d as DELETE /v2/<repo>/manifests/<d> does: its tags, then
// its revision link.
func apiDelete(t *testing.T, ns distribution.Namespace, repo string, d digest.Digest) {
	t.Helper()
	ctx := context.Background()
	r := regtest.Repository(t, ns, repo)
	tags, err := r.Tags(ctx).Lookup(ctx, v1.Descriptor{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := r.Tags(ctx).Untag(ctx, tag); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
}
