// Package difftest compares regsweep's plan with distribution's own garbage collector
// (storage.MarkAndSweep, v3.1.2) on generated registries, file by file.
//
// For every seed, a registry is populated through distribution's storage API
// (internal/synth). MarkAndSweep runs on copies of the tree, once per mode; the files it
// removed are the files present before and absent after. regsweep indexes and plans on the
// original tree, which must stay byte-for-byte unchanged; the files it would remove are
// the files under every path its plan names. Expected relation (docs/design.md, "Where
// distribution's own GC differs"):
//
//   - default mode: equal, except _layers links MarkAndSweep removes while their blob stays
//     (it decides layer links repo by repo, before later repositories are marked): each
//     such link must have its blob data still present in MarkAndSweep's output;
//   - delete-untagged without keeping referrers: equal, with the same exception;
//   - delete-untagged keeping referrers (the default): a subset of the above, and whatever
//     MarkAndSweep removes that regsweep keeps belongs to a referrer whose subject is live
//     (transitively), or to a blob of such a referrer; and every file of such a referrer
//     is kept. Some seeds must exercise this.
//
// Uploads are never touched by MarkAndSweep; with the run an hour ahead of the pushes and
// the default 168h upload age, regsweep plans none either (and plans all of them with a
// one-minute upload age). TestDifferentialKnownDifferences adds repositories without
// tags and repositories holding only _layers, where regsweep deletes exactly the links
// MarkAndSweep leaves dangling.
//
// Trees go to /dev/shm when it exists: the filesystem driver fsyncs every write (the
// package takes ~7 s on tmpfs, ~50 s on an ext4 disk, with 2 cores).
package difftest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	dstorage "github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

const nSeeds = 50

func TestMain(m *testing.M) {
	// distribution's vacuum logs every delete at info level through logrus.
	logrus.SetLevel(logrus.WarnLevel)
	os.Exit(m.Run())
}

// totals aggregates what the seeds exercised.
type totals struct {
	mu              sync.Mutex
	seeds           int
	keepDiffSeeds   int // seeds where keeping referrers kept files MarkAndSweep -m removes
	keepDiffFiles   int
	exc1Default     int // layer links MarkAndSweep removes with their blob live, default mode
	exc1Untagged    int // same, delete-untagged mode
	removedDefault  int
	removedUntagged int
}

func TestDifferentialMarkAndSweep(t *testing.T) {
	var tot totals
	t.Run("seed", func(t *testing.T) {
		for seed := int64(1); seed <= nSeeds; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel() // at most GOMAXPROCS (-parallel) at once
				r := checkSeed(t, seed, synth.Small())
				tot.mu.Lock()
				defer tot.mu.Unlock()
				tot.seeds++
				if r.keepDiff > 0 {
					tot.keepDiffSeeds++
				}
				tot.keepDiffFiles += r.keepDiff
				tot.exc1Default += r.exc1Default
				tot.exc1Untagged += r.exc1Untagged
				tot.removedDefault += r.removedDefault
				tot.removedUntagged += r.removedUntagged
			})
		}
	})
	t.Logf("%d seeds: MarkAndSweep removed %d files (default) and %d (-m); layer links it removed with the blob live: %d (default), %d (-m); referrer files kept under -m: %d in %d seeds",
		tot.seeds, tot.removedDefault, tot.removedUntagged, tot.exc1Default, tot.exc1Untagged, tot.keepDiffFiles, tot.keepDiffSeeds)
	if tot.seeds == nSeeds && tot.keepDiffSeeds == 0 {
		t.Errorf("no seed exercised keeping referrers under delete-untagged: the generator's mix is too weak")
	}
}

// TestDifferentialKnownDifferences adds the layouts where MarkAndSweep is known to be
// wrong (docs/design.md), each with its exact expectation:
//   - a repository only ever pushed to by digest (no _manifests/tags): under -m,
//     MarkAndSweep neither marks nor queues its manifests, so it deletes their blobs and
//     leaves their revision links dangling; regsweep deletes those revision links too
//     (exactly those whose manifest blob MarkAndSweep deleted);
//   - a repository holding only _layers links: MarkAndSweep never enumerates it and leaves
//     links to the blobs it deletes; regsweep deletes exactly those links.
func TestDifferentialKnownDifferences(t *testing.T) {
	cfg := synth.Small()
	cfg.UntaggedRepos, cfg.OrphanRepos = 1, 1
	var mu sync.Mutex
	var seeds, revs, links int
	t.Run("seed", func(t *testing.T) {
		for seed := int64(101); seed <= 110; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				r := checkSeed(t, seed, cfg)
				mu.Lock()
				defer mu.Unlock()
				seeds++
				revs += r.knownRevs
				links += r.knownLinks
			})
		}
	})
	t.Logf("%d seeds: regsweep also deletes %d dangling revision links of by-digest repositories (-m) and %d layer links of orphan repositories",
		seeds, revs, links)
	if seeds == 10 && (revs == 0 || links == 0) {
		t.Errorf("known differences not exercised: %d revision links, %d orphan layer links", revs, links)
	}
}

type seedResult struct {
	keepDiff, exc1Default, exc1Untagged int
	removedDefault, removedUntagged     int
	knownRevs, knownLinks               int
}

func checkSeed(t *testing.T, seed int64, cfg synth.Config) seedResult {
	ctx := context.Background()
	var res seedResult
	var counts []string
	defer func() {
		if t.Failed() {
			t.Logf("seed %d: %s", seed, strings.Join(counts, "; "))
		}
	}()

	base := tempDir(t)
	orig := filepath.Join(base, "orig")
	_, ns, err := synth.NewFilesystem(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := synth.Populate(ctx, ns, seed, cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts = append(counts, fmt.Sprintf("generated: repos %v, pushed %v, %d referrers, %d copies, %d retags, %d untags, %d deletes, %d uploads",
		sum.Repos, sum.Pushed, len(sum.Referrers), sum.Copies, sum.Retagged, sum.Untagged, len(sum.Deleted), len(sum.Uploads)))
	before := listFiles(t, orig)
	snap := snapshot(t, orig)

	// distribution's MarkAndSweep, on a copy per mode.
	masRemoved := map[bool]fileSet{}
	masAfter := map[bool]fileSet{}
	masDir := map[bool]string{}
	for _, m := range []bool{false, true} {
		dir := filepath.Join(base, fmt.Sprintf("mas-m-%v", m))
		copyTree(t, orig, dir)
		drv, ns, err := synth.NewFilesystem(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := dstorage.MarkAndSweep(ctx, drv, ns, dstorage.GCOpts{DryRun: false, RemoveUntagged: m, Quiet: true}); err != nil {
			t.Fatalf("MarkAndSweep (delete-untagged %v): %v", m, err)
		}
		after := listFiles(t, dir)
		if extra := after.minus(before); len(extra) > 0 {
			t.Errorf("MarkAndSweep (delete-untagged %v) created files: %v", m, extra)
		}
		removed := fileSet{}
		for _, f := range before.minus(after) {
			removed[f] = struct{}{}
		}
		masRemoved[m], masAfter[m], masDir[m] = removed, after, dir
	}
	res.removedDefault, res.removedUntagged = len(masRemoved[false]), len(masRemoved[true])

	// Sanity: in default mode distribution's GC leaves every tag pullable.
	checkTagsResolve(t, ctx, masDir[false], sum)

	// regsweep: index and plan the original tree.
	idx, err := graph.Open(filepath.Join(base, "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	drv := storage.NewFilesystem(orig) // what regsweep gc reads through
	// Odd seeds scan with one worker, even seeds with 64: the suite must hold at every
	// concurrency setting.
	workers := 1
	if seed%2 == 0 {
		workers = 64
	}
	// Every fourth seed stats every blob; the others defer as regsweep gc does.
	// Seeds divisible by 3 build without the manifest cache; the others build twice,
	// and plan from the second build, which parses every manifest from the cache.
	// Odd seeds spill the blob id table to disk every 16 blobs, as a registry of
	// more than a million blobs does.
	cache := seed%3 != 0
	spill := 0
	if seed%2 == 1 {
		spill = 16
	}
	build := func() {
		t.Helper()
		if err := graph.Build(ctx, drv, idx, graph.WithWorkers(workers), graph.WithDeferredStats(seed%4 != 1), graph.WithManifestCache(cache), graph.WithIDTableMemory(spill)); err != nil {
			t.Fatalf("graph.Build: %v", err)
		}
	}
	build()
	if cache {
		build()
		if m, _ := idx.Meta(); m.ManifestsRead != 0 || m.ManifestsCached != m.Manifests {
			t.Errorf("second build on an unchanged tree: read %d manifests, %d of %d from the cache", m.ManifestsRead, m.ManifestsCached, m.Manifests)
		}
	}
	now := time.Now().Add(time.Hour)
	plan := func(name string, extra ...gc.Option) *gc.Plan {
		t.Helper()
		opts := append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(now), gc.WithUploadAge(168 * time.Hour)}, extra...)
		p, err := gc.NewPlan(ctx, idx, opts...)
		if err != nil {
			t.Fatalf("NewPlan %s: %v", name, err)
		}
		if len(p.Blocked) > 0 {
			t.Errorf("plan %s: blocked: %+v", name, p.Blocked)
		}
		return p
	}
	pDefault := plan("default", gc.WithDeleteUntagged(false), gc.WithKeepReferrers(true))
	pKeep := plan("delete-untagged", gc.WithDeleteUntagged(true)) // keeping referrers is the default
	pNoKeep := plan("delete-untagged,drop-referrers", gc.WithDeleteUntagged(true), gc.WithKeepReferrers(false))
	pUploads := plan("upload-age=1m", gc.WithDeleteUntagged(false), gc.WithUploadAge(time.Minute))
	if err := idx.Close(); err != nil {
		t.Errorf("close index: %v", err)
	}
	if after := snapshot(t, orig); !maps.Equal(snap, after) {
		t.Errorf("indexing and planning changed the original tree: %s", snapDiff(snap, after))
	}

	ours := map[string]fileSet{
		"default":    planFiles(t, orig, pDefault, "default"),
		"keep":       planFiles(t, orig, pKeep, "delete-untagged"),
		"nokeep":     planFiles(t, orig, pNoKeep, "delete-untagged,drop-referrers"),
		"uploads-1m": planFiles(t, orig, pUploads, "upload-age=1m"),
	}
	counts = append(counts, fmt.Sprintf("MarkAndSweep removed %d files (default), %d (-m); regsweep plans %d (default), %d (-m keep referrers), %d (-m drop referrers)",
		len(masRemoved[false]), len(masRemoved[true]), len(ours["default"]), len(ours["keep"]), len(ours["nokeep"])))

	// Uploads: none with 168h, all of them with 1m.
	for name, p := range map[string]*gc.Plan{"default": pDefault, "delete-untagged": pKeep, "delete-untagged,drop-referrers": pNoKeep} {
		if len(p.Uploads) > 0 {
			t.Errorf("plan %s deletes uploads younger than the upload age: %+v", name, p.Uploads)
		}
	}
	var gotUp, wantUp []string
	for _, u := range pUploads.Uploads {
		gotUp = append(gotUp, u.Repository+"/"+u.ID)
	}
	for _, u := range sum.Uploads {
		wantUp = append(wantUp, u.Repo+"/"+u.ID)
	}
	slices.Sort(gotUp)
	slices.Sort(wantUp)
	if !slices.Equal(gotUp, wantUp) {
		t.Errorf("with a 1m upload age, plan deletes uploads %v, want every unfinished upload %v", gotUp, wantUp)
	}
	// Apart from the uploads, the 1m plan is the default plan.
	for _, f := range symDiff(ours["uploads-1m"], ours["default"]) {
		if classify(f).Kind != fUpload {
			t.Errorf("upload age changed the plan beyond uploads: %s", f)
		}
	}

	// What regsweep deletes on purpose and MarkAndSweep leaves behind (empty for Small):
	// layer links in orphan repositories to blobs MarkAndSweep deleted, and under -m the
	// revision links, in repositories without tags, of manifests whose blob it deleted.
	known := map[bool]fileSet{false: {}, true: {}}
	for f := range before {
		rf := classify(f)
		for _, m := range []bool{false, true} {
			if rf.Digest == "" || masRemoved[m].has(f) || !masRemoved[m].has(blobDataPath(rf.Digest)) {
				continue
			}
			switch {
			case rf.Kind == fLayerLink && slices.Contains(sum.OrphanRepos, rf.Repo),
				m && rf.Kind == fRevLink && slices.Contains(sum.UntaggedRepos, rf.Repo):
				known[m][f] = struct{}{}
			}
		}
	}
	for f := range known[true] {
		if classify(f).Kind == fRevLink {
			res.knownRevs++
		} else {
			res.knownLinks++
		}
	}

	// The comparisons.
	ex := explainer{root: orig, sum: sum}
	res.exc1Default = compareWithMAS(t, "default", ours["default"], masRemoved[false], masAfter[false], known[false], ex)
	res.exc1Untagged = compareWithMAS(t, "delete-untagged,drop-referrers", ours["nokeep"], masRemoved[true], masAfter[true], known[true], ex)
	res.keepDiff = compareKeepReferrers(t, orig, before, ours["keep"], ours["nokeep"], masRemoved[true], masAfter[true], known[true], ex)
	counts = append(counts, fmt.Sprintf("layer links removed by MarkAndSweep with their blob live: %d (default), %d (-m); files kept for referrers under -m: %d",
		res.exc1Default, res.exc1Untagged, res.keepDiff))
	return res
}

// compareWithMAS asserts that ours equals MarkAndSweep's removed files plus known, except
// _layers links MarkAndSweep removed whose blob data is still in its output. It returns
// how many such links there were.
func compareWithMAS(t *testing.T, mode string, ours, mas, masAfter, known fileSet, ex explainer) int {
	t.Helper()
	for _, f := range ours.minus(mas) {
		if !known.has(f) {
			t.Errorf("%s: regsweep deletes %s, MarkAndSweep keeps it%s", mode, f, ex.explain(f))
		}
	}
	for _, f := range known.minus(ours) {
		t.Errorf("%s: regsweep keeps %s, which MarkAndSweep leaves behind although it deletes its target%s", mode, f, ex.explain(f))
	}
	exc := 0
	for _, f := range mas.minus(ours) {
		rf := classify(f)
		if rf.Kind == fLayerLink && masAfter.has(blobDataPath(rf.Digest)) {
			exc++ // decided repo by repo, before the blob was marked from a later repository
			continue
		}
		t.Errorf("%s: MarkAndSweep deletes %s, regsweep keeps it%s", mode, f, ex.explain(f))
	}
	return exc
}

// compareKeepReferrers checks delete-untagged with referrers kept against the same mode
// without (keep ⊆ nokeep) and against MarkAndSweep -m: what MarkAndSweep removes and
// regsweep keeps must belong to referrers whose subject is live, and such referrers must
// be kept whole. It returns the number of files kept that way.
func compareKeepReferrers(t *testing.T, root string, before, keep, nokeep, mas, masAfter, known fileSet, ex explainer) int {
	t.Helper()
	const mode = "delete-untagged keeping referrers"
	for _, f := range keep.minus(nokeep) {
		t.Errorf("%s: regsweep deletes %s, but not when dropping referrers%s", mode, f, ex.explain(f))
	}
	for _, f := range keep.minus(mas) {
		if !known.has(f) {
			t.Errorf("%s: regsweep deletes %s, MarkAndSweep -m keeps it%s", mode, f, ex.explain(f))
		}
	}

	// Manifests of the original tree (by revision link), and their parsed content.
	infos := map[digest.Digest]manifestInfo{}
	for f := range before {
		if rf := classify(f); rf.Kind == fRevLink {
			if _, ok := infos[rf.Digest]; ok {
				continue
			}
			mi, err := readManifest(root, rf.Digest)
			if err != nil {
				t.Fatalf("read manifest %s: %v", rf.Digest, err)
			}
			infos[rf.Digest] = mi
		}
	}
	// Live under -m per MarkAndSweep: a revision link and the blob data both survived.
	live := map[digest.Digest]bool{}
	for f := range masAfter {
		if rf := classify(f); rf.Kind == fRevLink && masAfter.has(blobDataPath(rf.Digest)) {
			live[rf.Digest] = true
		}
	}
	// Referrers to keep: subject live, or itself a referrer to keep (signature of an SBOM).
	keepRef := map[digest.Digest]bool{}
	for changed := true; changed; {
		changed = false
		for d, mi := range infos {
			if mi.Subject != "" && !keepRef[d] && !live[d] && (live[mi.Subject] || keepRef[mi.Subject]) {
				keepRef[d] = true
				changed = true
			}
		}
	}
	// What they reach: themselves, config, layers (children, were a referrer an index).
	closure := map[digest.Digest]bool{}
	var reach func(d digest.Digest)
	reach = func(d digest.Digest) {
		if closure[d] {
			return
		}
		closure[d] = true
		if mi, ok := infos[d]; ok {
			for _, r := range mi.Refs {
				reach(r)
			}
		}
	}
	for d := range keepRef {
		reach(d)
	}

	kept := 0
	for _, f := range mas.minus(keep) {
		rf := classify(f)
		switch {
		case rf.Kind == fLayerLink && masAfter.has(blobDataPath(rf.Digest)):
			// MarkAndSweep's repo-by-repo layer link decision, as in the other modes.
		case (rf.Kind == fRevLink || rf.Kind == fTagIndex) && keepRef[rf.Digest],
			(rf.Kind == fBlobData || rf.Kind == fLayerLink) && closure[rf.Digest]:
			kept++
		default:
			t.Errorf("%s: MarkAndSweep -m deletes %s, regsweep keeps it, and it belongs to no referrer of a live manifest%s", mode, f, ex.explain(f))
		}
	}
	for _, f := range slices.Sorted(maps.Keys(before)) {
		rf := classify(f)
		var owner bool
		switch rf.Kind {
		case fRevLink, fTagIndex:
			owner = keepRef[rf.Digest]
		case fBlobData, fLayerLink:
			owner = closure[rf.Digest]
		}
		if owner && keep.has(f) {
			t.Errorf("%s: regsweep deletes %s, which belongs to a referrer whose subject is live%s", mode, f, ex.explain(f))
		}
	}
	return kept
}

// planFiles checks the paths a plan names and returns the files under them.
func planFiles(t *testing.T, root string, p *gc.Plan, name string) fileSet {
	t.Helper()
	s := fileSet{}
	add := func(kind, drvPath, want string, dir bool) {
		if strings.TrimSuffix(drvPath, "/") != want {
			t.Errorf("plan %s: %s path %q, want %q", name, kind, drvPath, want)
			return
		}
		full := filepath.Join(root, filepath.FromSlash(drvPath))
		fi, err := os.Lstat(full)
		if err != nil {
			t.Errorf("plan %s: %s path %s: %v", name, kind, drvPath, err)
			return
		}
		if fi.IsDir() != dir {
			t.Errorf("plan %s: %s path %s: is a directory: %v, want %v", name, kind, drvPath, fi.IsDir(), dir)
			return
		}
		for f := range listFiles(t, full) {
			rel := strings.TrimPrefix(path0(drvPath), "/")
			if f != "." {
				rel += "/" + f
			}
			s[rel] = struct{}{}
		}
	}
	repoDir := func(repo string) string { return "/" + v2 + "/repositories/" + repo }
	for _, b := range p.Blobs {
		want := fmt.Sprintf("/%s/blobs/%s/%s/%s", v2, b.Digest().Algorithm(), b.Digest().Encoded()[:2], b.Digest().Encoded())
		add("blob", b.Path(), want, true)
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(blobDataPath(b.Digest())))); err == nil && fi.Size() != b.Size() {
			t.Errorf("plan %s: blob %s size %d, data file has %d bytes", name, b.Digest(), b.Size(), fi.Size())
		}
	}
	for _, m := range p.Manifests {
		add("revision", m.Path, fmt.Sprintf("%s/_manifests/revisions/%s/%s", repoDir(m.Repository), m.Digest.Algorithm(), m.Digest.Encoded()), true)
		for _, ti := range m.TagIndex {
			rf := classify(strings.TrimPrefix(path0(ti), "/") + "/link")
			add("tag index", ti, fmt.Sprintf("%s/_manifests/tags/%s/index/%s/%s", repoDir(m.Repository), rf.Tag, m.Digest.Algorithm(), m.Digest.Encoded()), true)
		}
	}
	for _, l := range p.LayerLinks {
		add("layer link", l.Path, fmt.Sprintf("%s/_layers/%s/%s/link", repoDir(l.Repository), l.Digest.Algorithm(), l.Digest.Encoded()), false)
	}
	for _, u := range p.Uploads {
		add("upload", u.Path, fmt.Sprintf("%s/_uploads/%s", repoDir(u.Repository), u.ID), true)
	}
	return s
}

func path0(p string) string { return strings.TrimSuffix(p, "/") }

func symDiff(a, b fileSet) []string {
	return slices.Sorted(slices.Values(append(a.minus(b), b.minus(a)...)))
}

func snapDiff(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		} else if v != w {
			out = append(out, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "added "+k)
		}
	}
	slices.Sort(out)
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... %d more", len(out)-20))
	}
	return strings.Join(out, ", ")
}

// explainer says what a file is, for failure messages.
type explainer struct {
	root string
	sum  *synth.Summary
}

func (e explainer) explain(f string) string {
	rf := classify(f)
	s := fmt.Sprintf(" [%s", rf.Kind)
	if rf.Repo != "" {
		s += " repo " + rf.Repo
	}
	if rf.Digest != "" {
		s += " " + rf.Digest.String()
		for repo, ms := range e.sum.Manifests {
			if k, ok := ms[rf.Digest]; ok {
				s += fmt.Sprintf("; %s manifest in %s", k, repo)
			}
		}
		for _, r := range e.sum.Referrers {
			if r.Digest == rf.Digest {
				s += fmt.Sprintf("; referrer in %s of %s", r.Repo, r.Subject)
			}
		}
		for _, d := range e.sum.Deleted {
			if d.Digest == rf.Digest {
				s += "; API-deleted from " + d.Repo
			}
		}
		for repo, tags := range e.sum.Tags {
			for tag, d := range tags {
				if d == rf.Digest {
					s += fmt.Sprintf("; tagged %s:%s", repo, tag)
				}
			}
		}
	}
	return s + "]"
}

// checkTagsResolve pulls every tag of the summary from the tree at root, down to the
// blobs of every image, through distribution's registry API.
func checkTagsResolve(t *testing.T, ctx context.Context, root string, sum *synth.Summary) {
	t.Helper()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
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
		for _, tag := range slices.Sorted(maps.Keys(sum.Tags[name])) {
			want := sum.Tags[name][tag]
			desc, err := repo.Tags(ctx).Get(ctx, tag)
			if err != nil || desc.Digest != want {
				t.Errorf("after MarkAndSweep: %s:%s -> %s, %v; want %s", name, tag, desc.Digest, err, want)
				continue
			}
			if err := pull(ctx, ms, repo.Blobs(ctx), want); err != nil {
				t.Errorf("after MarkAndSweep: %s:%s: %v", name, tag, err)
			}
		}
	}
}

func pull(ctx context.Context, ms distribution.ManifestService, bs distribution.BlobStatter, d digest.Digest) error {
	m, err := ms.Get(ctx, d)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, ref := range m.References() {
		switch ref.MediaType {
		case schema2.MediaTypeManifest, manifestlist.MediaTypeManifestList, v1.MediaTypeImageManifest, v1.MediaTypeImageIndex:
			if err := pull(ctx, ms, bs, ref.Digest); err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
		default:
			if _, err := bs.Stat(ctx, ref.Digest); err != nil {
				return fmt.Errorf("%s: blob %s: %w", d, ref.Digest, err)
			}
		}
	}
	return nil
}
