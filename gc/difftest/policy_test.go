package difftest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	dstorage "github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/reference"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// Policies covering every repository, deleting untagged manifests; the seeds take
// them in turn.
var diffPolicies = []string{
	// The two most recently pushed tags of each repository.
	"policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 2\n",
	// latest, and the most recent v tag.
	"policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - patterns: [\"^latest$\"]\n      - patterns: [\"^v\"]\n        mostRecentlyPushedCount: 1\n",
	// Every tag goes.
	"policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    allowEmpty: true\n    keepTags:\n      - patterns: [\"^none$\"]\n",
	// Odd v tags; the last tag stays where none is odd.
	"policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - patterns: [\"^v[0-9]*[13579]$\"]\n",
}

// TestDifferentialPolicy: a policy run (plan and real sweep) leaves the storage as
// distribution's own tag delete of the same tags (through its storage API) followed by
// MarkAndSweep with RemoveUntagged does, except the documented differences: layer
// links MarkAndSweep decides repository by repository, and, when referrers are kept
// (the default), the referrers of live images.
func TestDifferentialPolicy(t *testing.T) {
	var mu sync.Mutex
	var seeds, untagged, removed, referrerFiles int
	t.Run("seed", func(t *testing.T) {
		for seed := int64(201); seed <= 216; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				n, r, k := checkPolicySeed(t, seed, diffPolicies[seed%int64(len(diffPolicies))])
				mu.Lock()
				defer mu.Unlock()
				seeds++
				untagged += n
				removed += r
				referrerFiles += k
			})
		}
	})
	t.Logf("%d seeds: policies deleted %d tags; distribution's untag + MarkAndSweep -m removed %d files; referrer files kept: %d", seeds, untagged, removed, referrerFiles)
	if seeds == 16 && (untagged == 0 || referrerFiles == 0) {
		t.Errorf("policies not exercised: %d tags deleted, %d referrer files kept", untagged, referrerFiles)
	}
}

func checkPolicySeed(t *testing.T, seed int64, src string) (tags, removed, referrerFiles int) {
	ctx := context.Background()
	pol, err := policy.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	base := tempDir(t)
	orig := filepath.Join(base, "orig")
	_, ns, err := synth.NewFilesystem(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := synth.Populate(ctx, ns, seed, synth.Small())
	if err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, orig)

	// regsweep: scan, plan with the policy, sweep a copy; once keeping referrers
	// (the default) and once not.
	now := time.Now().Add(time.Hour)
	run := func(name string, keepReferrers bool) (*gc.Plan, fileSet, fileSet) {
		dir := filepath.Join(base, name)
		copyTree(t, orig, dir)
		idx, err := graph.Open(filepath.Join(base, name+"-index"))
		if err != nil {
			t.Fatal(err)
		}
		defer idx.Close()
		drv := storage.NewFilesystem(dir)
		if err := graph.Build(ctx, drv, idx, graph.WithDeferredStats(true)); err != nil {
			t.Fatal(err)
		}
		p, err := gc.NewPlan(ctx, idx, gc.WithPolicy(pol), gc.WithGracePeriod(0), gc.WithNow(now), gc.WithKeepReferrers(keepReferrers))
		if err != nil {
			t.Fatalf("plan %s: %v", name, err)
		}
		if len(p.Blocked) > 0 {
			t.Fatalf("plan %s blocked: %+v", name, p.Blocked)
		}
		res, err := sweep.Run(ctx, drv, p)
		if err != nil {
			t.Fatalf("sweep %s: %v", name, err)
		}
		if res.Missing != 0 {
			t.Errorf("%s: %d planned items were not there when the sweep came to them: the plan names what the tag deletes remove", name, res.Missing)
		}
		if res.DeletedTags != len(p.Tags) || res.KeptTags != 0 {
			t.Errorf("%s: deleted %d tags, kept %d, of %d planned", name, res.DeletedTags, res.KeptTags, len(p.Tags))
		}
		after := listFiles(t, dir)
		gone := fileSet{}
		for _, f := range before.minus(after) {
			gone[f] = struct{}{}
		}
		return p, gone, after
	}
	pNoKeep, noKeep, _ := run("regsweep-nokeep", false)
	pKeep, keep, _ := run("regsweep-keep", true)
	if len(pKeep.Tags) != len(pNoKeep.Tags) {
		t.Fatalf("keeping referrers changed the tags deleted: %d, %d", len(pKeep.Tags), len(pNoKeep.Tags))
	}
	// The policy's decision, checked against the tags the generator left.
	want := 0
	for _, tagMap := range sum.Tags {
		want += len(tagMap)
	}
	if pol.Policies[0].AllowEmpty && len(pKeep.Tags) != want {
		t.Errorf("allowEmpty policy deletes %d tags, want all %d", len(pKeep.Tags), want)
	}

	// distribution: delete the same tags through its storage API, then MarkAndSweep -m.
	masDir := filepath.Join(base, "mas")
	copyTree(t, orig, masDir)
	drv, mns, err := synth.NewFilesystem(ctx, masDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range pKeep.Tags {
		named, err := reference.WithName(it.Repository)
		if err != nil {
			t.Fatal(err)
		}
		repo, err := mns.Repository(ctx, named)
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.Tags(ctx).Untag(ctx, it.Tag); err != nil {
			t.Fatalf("distribution untag %s:%s: %v", it.Repository, it.Tag, err)
		}
	}
	if err := dstorage.MarkAndSweep(ctx, drv, mns, dstorage.GCOpts{RemoveUntagged: true, Quiet: true}); err != nil {
		t.Fatalf("MarkAndSweep: %v", err)
	}
	masAfter := listFiles(t, masDir)
	mas := fileSet{}
	for _, f := range before.minus(masAfter) {
		mas[f] = struct{}{}
	}
	// Tag files: both remove the same tags whole.
	for _, f := range symDiff(filterKind(keep, fTagCurrent), filterKind(mas, fTagCurrent)) {
		t.Errorf("tag link %s removed by one of regsweep and distribution only", f)
	}
	ex := explainer{root: orig, sum: sum}
	compareWithMAS(t, "policy, referrers dropped", noKeep, mas, masAfter, fileSet{}, ex)
	referrerFiles = compareKeepReferrers(t, orig, before, keep, noKeep, mas, masAfter, fileSet{}, ex)
	return len(pKeep.Tags), len(mas), referrerFiles
}

func filterKind(s fileSet, kind string) fileSet {
	out := fileSet{}
	for f := range s {
		if classify(f).Kind == kind {
			out[f] = struct{}{}
		}
	}
	return out
}
