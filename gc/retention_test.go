package gc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// retentionTree writes images into an empty registry, each blob of a known size, and
// remembers what it wrote.
type retentionTree struct {
	t     *testing.T
	root  string
	sizes map[digest.Digest]int64
	now   time.Time
}

func newRetentionTree(t *testing.T) *retentionTree {
	// The run counts from two hours ahead: what the test writes is older than any
	// grace it plans with; tags get their own times.
	return &retentionTree{t: t, root: t.TempDir(), sizes: map[digest.Digest]int64{}, now: time.Now().Add(2 * time.Hour)}
}

func (r *retentionTree) blob(repo, content string) digest.Digest {
	d := regtest.PutBlob(r.t, r.root, repo, []byte(content))
	r.sizes[d] = int64(len(content))
	return d
}

// image pushes an OCI image of the named layers to repo, tagged tag (none: ""),
// pushed age ago; it returns the manifest's digest and every blob it references,
// itself included.
func (r *retentionTree) image(repo, tag string, age time.Duration, layers ...string) (digest.Digest, []digest.Digest) {
	cfg := r.blob(repo, `{"config":"`+repo+tag+strings.Join(layers, ",")+`"}`)
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfg, Size: r.sizes[cfg]}}
	m.SchemaVersion = 2
	all := []digest.Digest{cfg}
	for _, l := range layers {
		d := r.blob(repo, l)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: r.sizes[d]})
		all = append(all, d)
	}
	b, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	md := regtest.PutManifest(r.t, r.root, repo, tag, b)
	r.sizes[md] = int64(len(b))
	if tag != "" {
		when := r.now.Add(-age)
		if err := os.Chtimes(regtest.FSPath(r.root, regtest.Path(r.t, storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: tag})), when, when); err != nil {
			r.t.Fatal(err)
		}
	}
	return md, append(all, md)
}

func (r *retentionTree) bytes(ds ...digest.Digest) int64 {
	var n int64
	seen := map[digest.Digest]bool{}
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			n += r.sizes[d]
		}
	}
	return n
}

func mustPolicy(t *testing.T, src string) *policy.File {
	t.Helper()
	f, err := policy.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// plan scans the tree and plans it at the tree's now (grace 0 unless opts say).
func (r *retentionTree) plan(opts ...gc.Option) *gc.Plan {
	r.t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(r.t.TempDir())
	if err != nil {
		r.t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(r.root), idx, graph.WithDeferredStats(true)); err != nil {
		r.t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(r.now)}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// TestPolicyPlan: the tags a policy does not keep are in the plan, what only they
// kept is garbage where the policy says deleteUntagged, and the bytes it frees are
// counted per policy and per repository, against sizes written by the test.
func TestPolicyPlan(t *testing.T) {
	r := newRetentionTree(t)
	day := 24 * time.Hour
	// ci/app: three builds on a shared base; only the newest stays.
	_, b1 := r.image("ci/app", "build-1", 3*day, "base", "app-1")
	_, b2 := r.image("ci/app", "build-2", 2*day, "base", "app-2")
	_, b3 := r.image("ci/app", "build-3", 1*day, "base", "app-3")
	// ci/lib: one old tag on the same base, and an untagged old manifest: the last tag
	// stays; the untagged manifest is garbage (deleteUntagged) regardless of tags.
	r.image("ci/lib", "v1", 10*day, "base", "lib-1")
	_, un := r.image("ci/lib", "", 0, "lib-0")
	// ci/tool: both tags name one manifest; removing one frees nothing.
	toolM, _ := r.image("ci/tool", "a", 5*day, "tool")
	regtest.Write(t, r.root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "ci/tool", Tag: "b"}, []byte(toolM))
	when := r.now.Add(-4 * day)
	os.Chtimes(regtest.FSPath(r.root, regtest.Path(t, storage.Spec{Kind: storage.TagCurrentLink, Repo: "ci/tool", Tag: "b"})), when, when)
	// team/a: its policy deletes dev tags but not untagged manifests: frees nothing.
	r.image("team/a", "release", 9*day, "rel")
	r.image("team/a", "dev-1", 9*day, "dev-1")
	// other: no policy; an old tag and an untagged manifest both stay.
	r.image("other", "old", 100*day, "other")
	r.image("other", "", 0, "other-untagged")

	pol := mustPolicy(t, `policies:
  - repositories: ["ci/**"]
    deleteUntagged: true
    keepTags:
      - mostRecentlyPushedCount: 1
  - repositories: ["team/*"]
    keepTags:
      - patterns: ["^release$"]
`)
	p := r.plan(gc.WithPolicy(pol))

	var tags []string
	for _, it := range p.Tags {
		tags = append(tags, it.Repository+":"+it.Tag)
		want := regtest.Path(t, storage.Spec{Kind: storage.TagDir, Repo: it.Repository, Tag: it.Tag})
		if it.Path != want || it.Digest == "" || it.PushedAt.IsZero() || it.Reason == "" || !strings.HasPrefix(it.Policy, "policies[") {
			t.Errorf("tag item %+v (want path %s)", it, want)
		}
	}
	if want := []string{"ci/app:build-1", "ci/app:build-2", "ci/tool:a", "team/a:dev-1"}; !slices.Equal(tags, want) {
		t.Fatalf("plan deletes tags %v, want %v", tags, want)
	}
	if p.Summary.DeleteTags != 4 {
		t.Errorf("summary delete_tags %d", p.Summary.DeleteTags)
	}
	// What untagging frees: build-1 and build-2 but the base they share with build-3.
	freed := append(slices.DeleteFunc(slices.Clone(b1), func(d digest.Digest) bool { return slices.Contains(b3, d) }),
		slices.DeleteFunc(slices.Clone(b2), func(d digest.Digest) bool { return slices.Contains(b3, d) })...)
	ret := p.Retention
	if ret == nil {
		t.Fatal("no retention in the plan")
	}
	if ret.FreedBlobs != len(freed) || ret.FreedBytes != r.bytes(freed...) || ret.FreedManifests != 2 {
		t.Errorf("retention frees %d blobs, %d bytes, %d manifests; want %d, %d, 2", ret.FreedBlobs, ret.FreedBytes, ret.FreedManifests, len(freed), r.bytes(freed...))
	}
	// The plan deletes those and the untagged manifest of ci/lib, nothing of other/.
	deleted := map[digest.Digest]bool{}
	for _, b := range p.Blobs {
		deleted[b.Digest()] = true
	}
	for _, d := range append(slices.Clone(freed), un...) {
		if !deleted[d] {
			t.Errorf("plan keeps %s", d)
		}
	}
	if len(deleted) != len(freed)+len(un) {
		t.Errorf("plan deletes %d blobs, want %d", len(deleted), len(freed)+len(un))
	}
	byRepo := map[string]gc.RepoRetention{}
	for _, rr := range ret.Repositories {
		byRepo[rr.Name] = rr
	}
	if _, ok := byRepo["other"]; ok {
		t.Errorf("a repository no policy matches has a retention line")
	}
	check := func(name string, got gc.RetentionCounts, want gc.RetentionCounts) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %+v\nwant %+v", name, got, want)
		}
	}
	check("ci/app", byRepo["ci/app"].RetentionCounts, gc.RetentionCounts{Tags: 3, DeleteTags: 2, FreedBlobs: len(freed), FreedBytes: r.bytes(freed...), FreedManifests: 2})
	check("ci/lib", byRepo["ci/lib"].RetentionCounts, gc.RetentionCounts{Tags: 1})
	check("ci/tool", byRepo["ci/tool"].RetentionCounts, gc.RetentionCounts{Tags: 2, DeleteTags: 1})
	check("team/a", byRepo["team/a"].RetentionCounts, gc.RetentionCounts{Tags: 2, DeleteTags: 1})
	if len(ret.Policies) != 2 {
		t.Fatalf("policies %+v", ret.Policies)
	}
	check("policy 0", ret.Policies[0].RetentionCounts, gc.RetentionCounts{Tags: 6, DeleteTags: 3, FreedBlobs: len(freed), FreedBytes: r.bytes(freed...), FreedManifests: 2})
	check("policy 1", ret.Policies[1].RetentionCounts, gc.RetentionCounts{Tags: 2, DeleteTags: 1})
	if ret.Policies[0].Repositories != 3 || ret.Policies[1].Repositories != 1 || !ret.Policies[0].DeleteUntagged || ret.Policies[1].DeleteUntagged {
		t.Errorf("policy lines %+v", ret.Policies)
	}
	// The plan's JSON carries the policy for apply, and reads back.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back gc.Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Mode.Policy == nil || len(back.Mode.Policy.Policies) != 2 || len(back.Tags) != 4 || !back.Tags[0].PushedAt.Equal(p.Tags[0].PushedAt) {
		t.Errorf("plan read back: mode %+v, tags %+v", back.Mode, back.Tags)
	}
	if !back.Paths()[p.Tags[0].Path] {
		t.Errorf("plan paths do not name tag %s", p.Tags[0].Path)
	}
}

// A blob that the removed tags of two repositories reach counts in each, once in
// the policy's line and the total.
func TestPolicyFreedSharedAcrossRepositories(t *testing.T) {
	r := newRetentionTree(t)
	day := 24 * time.Hour
	_, a := r.image("ci/a", "old", 3*day, "shared", "a-only")
	r.image("ci/a", "new", 1*day, "a-new")
	_, b := r.image("ci/b", "old", 3*day, "shared", "b-only")
	r.image("ci/b", "new", 1*day, "b-new")
	p := r.plan(gc.WithPolicy(mustPolicy(t, "policies:\n  - repositories: [\"ci/*\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 1\n")))
	all := append(slices.Clone(a), b...)
	if p.Retention.FreedBytes != r.bytes(all...) {
		t.Errorf("total freed %d, want %d", p.Retention.FreedBytes, r.bytes(all...))
	}
	if got := p.Retention.Policies[0].FreedBytes; got != r.bytes(all...) {
		t.Errorf("policy freed %d, want %d (the shared layer once)", got, r.bytes(all...))
	}
	for _, rr := range p.Retention.Repositories {
		want := r.bytes(a...)
		if rr.Name == "ci/b" {
			want = r.bytes(b...)
		}
		if rr.FreedBytes != want {
			t.Errorf("%s freed %d, want %d (the shared layer in each)", rr.Name, rr.FreedBytes, want)
		}
	}
}

// Safety rules: grace keeps young tags, the last tag stays, referrers of a live image
// stay live, and -m with a policy treats every repository's untagged manifests as
// garbage.
func TestPolicySafety(t *testing.T) {
	r := newRetentionTree(t)
	day := 24 * time.Hour
	r.image("ci/young", "a", 30*time.Minute, "y1")
	r.image("ci/young", "b", 3*day, "y2")
	r.image("ci/last", "only", 300*day, "l1")
	pol := mustPolicy(t, "policies:\n  - repositories: [\"ci/*\"]\n    deleteUntagged: true\n    keepTags:\n      - patterns: [\"^release$\"]\n")
	p := r.plan(gc.WithPolicy(pol), gc.WithGracePeriod(time.Hour))
	var tags []string
	for _, it := range p.Tags {
		tags = append(tags, it.Repository+":"+it.Tag)
	}
	if !slices.Equal(tags, []string{"ci/young:b"}) {
		t.Errorf("tags deleted %v, want only ci/young:b (a is within grace, ci/last:only is the last tag)", tags)
	}
	kept := map[string]string{}
	for _, k := range p.Kept {
		if k.Kind == "tag" {
			kept[k.Repository+":"+k.Tag] = k.Reason
		}
	}
	if !strings.Contains(kept["ci/young:a"], "grace") || !strings.Contains(kept["ci/last:only"], "last tag") {
		t.Errorf("kept tags %v", kept)
	}
}

// Applying a plan: a tag pushed again since (same manifest, newer link) or moved to
// another manifest stays; the others go.
func TestPolicyApplyKeepsRepushedTags(t *testing.T) {
	r := newRetentionTree(t)
	day := 24 * time.Hour
	r.image("ci/app", "b1", 5*day, "l1")
	r.image("ci/app", "b2", 4*day, "l2")
	m3, _ := r.image("ci/app", "b3", 3*day, "l3")
	r.image("ci/app", "b4", 1*day, "l4")
	pol := mustPolicy(t, "policies:\n  - repositories: [\"ci/*\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 1\n")
	old := r.plan(gc.WithPolicy(pol))
	if len(old.Tags) != 3 {
		t.Fatalf("plan deletes %d tags, want 3", len(old.Tags))
	}
	// b1 pushed again (same manifest), b2 moved to b3's manifest, at the same old time.
	tagFile := func(tag string) string {
		return regtest.FSPath(r.root, regtest.Path(t, storage.Spec{Kind: storage.TagCurrentLink, Repo: "ci/app", Tag: tag}))
	}
	then := r.now.Add(-2 * day)
	os.Chtimes(tagFile("b1"), then, then)
	regtest.Write(t, r.root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "ci/app", Tag: "b2"}, []byte(m3))
	old2 := r.now.Add(-4 * day)
	os.Chtimes(tagFile("b2"), old2, old2)
	p := r.plan(gc.WithPolicy(pol), gc.WithOnly(old))
	var tags []string
	for _, it := range p.Tags {
		tags = append(tags, it.Tag)
	}
	if !slices.Equal(tags, []string{"b3"}) {
		t.Errorf("apply deletes tags %v, want only b3", tags)
	}
	reasons := map[string]string{}
	for _, k := range p.Kept {
		if k.Kind == "tag" {
			reasons[k.Tag] = k.Reason
		}
	}
	for _, tag := range []string{"b1", "b2"} {
		if !strings.Contains(reasons[tag], "pushed again") {
			t.Errorf("%s kept for %q, want pushed again", tag, reasons[tag])
		}
	}
	if got := fmt.Sprint(old.Dropped(p)); !strings.Contains(got, "tags/b1") || !strings.Contains(got, "tags/b2") {
		t.Errorf("dropped %s, want b1 and b2", got)
	}
}

// A repository's manifests count what it keeps, as its bytes do: under -m the
// untagged manifests the plan deletes count in neither.
func TestRepoStatsFollowMode(t *testing.T) {
	root := regtest.Sample(t)
	for _, tc := range []struct {
		m    bool
		want int
	}{{false, 2}, {true, 1}} {
		p := regtest.Plan(t, root, nil, gc.WithDeleteUntagged(tc.m))
		for _, r := range p.Repositories {
			if r.Name == "library/debian" && r.Manifests != tc.want {
				t.Errorf("-m=%v: library/debian counts %d manifests, want %d (12.0 is untagged)", tc.m, r.Manifests, tc.want)
			}
		}
	}
}
