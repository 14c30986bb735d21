//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// policyReport is the part of regsweep's JSON report a policy run adds or that
// TestE2EPolicy reads.
type policyReport struct {
	Summary struct {
		DeleteBlobs     int   `json:"delete_blobs"`
		DeleteBytes     int64 `json:"delete_bytes"`
		DeleteManifests int   `json:"delete_manifests"`
		DeleteTags      int   `json:"delete_tags"`
	} `json:"summary"`
	Delete struct {
		Tags []struct {
			Repository string        `json:"repository"`
			Tag        string        `json:"tag"`
			Digest     digest.Digest `json:"digest"`
			PushedAt   time.Time     `json:"pushed_at"`
			Policy     string        `json:"policy"`
			Reason     string        `json:"reason"`
			Path       string        `json:"path"`
		} `json:"tags"`
		Blobs []struct {
			Digest digest.Digest `json:"digest"`
			Size   int64         `json:"size"`
		} `json:"blobs"`
		Manifests []struct {
			Repository string        `json:"repository"`
			Digest     digest.Digest `json:"digest"`
		} `json:"manifests"`
	} `json:"delete"`
	Kept []struct {
		Kind       string `json:"kind"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Reason     string `json:"reason"`
	} `json:"kept"`
	Retention *struct {
		File           string `json:"file"`
		FreedBlobs     int    `json:"freed_blobs"`
		FreedBytes     int64  `json:"freed_bytes"`
		FreedManifests int    `json:"freed_manifests"`
		Policies       []struct {
			Policy         string `json:"policy"`
			Index          int    `json:"index"`
			DeleteUntagged bool   `json:"delete_untagged"`
			Repositories   int    `json:"repositories"`
			retentionCounts
		} `json:"policies"`
		Repositories []struct {
			Name   string `json:"name"`
			Policy string `json:"policy"`
			retentionCounts
		} `json:"repositories"`
	} `json:"retention"`
	Warnings []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"warnings"`
	Registry []struct {
		State string `json:"state"`
	} `json:"registry"`
	Result *struct {
		DeletedTags       int   `json:"deleted_tags"`
		KeptTags          int   `json:"kept_tags"`
		DeletedManifests  int   `json:"deleted_manifests"`
		DeletedBlobs      int   `json:"deleted_blobs"`
		DeletedLayerLinks int   `json:"deleted_layer_links"`
		FreedBytes        int64 `json:"freed_bytes"`
		AlreadyDone       int   `json:"already_done"`
		Missing           int   `json:"missing"`
	} `json:"result"`
}

// retentionCounts are the counts of one line of retention.policies or
// retention.repositories.
type retentionCounts struct {
	Tags           int   `json:"tags"`
	DeleteTags     int   `json:"delete_tags"`
	KeptBySafety   int   `json:"kept_by_safety"`
	FreedBlobs     int   `json:"freed_blobs"`
	FreedBytes     int64 `json:"freed_bytes"`
	FreedManifests int   `json:"freed_manifests"`
}

// policyGC runs regsweep gc with args (a fresh --index and -o json are added), wants
// exit 0 and returns the parsed report.
func policyGC(t *testing.T, args ...string) *policyReport {
	t.Helper()
	code, stdout, stderr := regsweepExit(t, args...)
	if code != 0 {
		t.Fatalf("regsweep %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), code, stderr, stdout)
	}
	var rep policyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("regsweep %s: output is not the JSON report: %v\n%s", strings.Join(args, " "), err, stdout)
	}
	return &rep
}

// ageTree sets the access and modification time of every file and directory under
// root to when (as regtest.Age does), so that no grace period protects them.
func ageTree(t *testing.T, root string, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatalf("age %s: %v", root, err)
	}
}

// tagLinkPath is the current link of repo:tag, whose modification time is the tag's
// push time.
func tagLinkPath(root, repo, tag string) string {
	return filepath.Join(v2(root), "repositories", filepath.FromSlash(repo), "_manifests", "tags", tag, "current", "link")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestE2EPolicy pushes CI builds and releases through docker-registry with skopeo in
// a controlled order, dates each push (the mtime of the tag's current link, which
// distribution rewrites on every push), and runs regsweep gc --policy: the dry run
// names exactly the tags the test expects and what their removal frees; the real run
// (against the registry in maintenance.readonly) deletes them, every kept tag still
// pulls with its pushed digest, every removed one answers 404, and the bytes the
// filesystem lost are result.freed_bytes, the dry run's delete_bytes and its
// retention.freed_bytes.
func TestE2EPolicy(t *testing.T) {
	if skipReason != "" {
		t.Skip("e2e: " + skipReason + "; set CI=true to make this a failure")
	}
	t.Cleanup(func() {
		if _, err := os.Stat("/var/lib/containers"); err == nil && !varLibContainersExisted {
			t.Errorf("skopeo created /var/lib/containers despite its private environment")
		}
	})
	const (
		KiB = 1024
		day = 24 * time.Hour
	)
	start := time.Now()
	root := filepath.Join(t.TempDir(), "storage")
	sk := newSkopeoEnv(t)
	w := newWorld()

	// Images. Every one has the same base layer. library/base 3.17, 3.18 and 3.19
	// add one layer each; team/app builds 1-3 are FROM base:3.18 and 4-8 FROM
	// base:3.19, plus a layer of their own; other/tool 1.0 is FROM base:3.17 (so that
	// layer outlives the base:3.17 tag) and 2.0 FROM base:3.19.
	base := layerBlob("policy-base", 48*KiB, true)
	libLayer := map[string]*blob{}
	baseImg := map[string]*manifest{}
	for i, v := range []string{"3.17", "3.18", "3.19"} {
		libLayer[v] = layerBlob("policy-lib-"+v, (20+4*i)*KiB, true)
		baseImg[v] = image("library/base "+v, "amd64", true, base, libLayer[v])
	}
	tool1 := image("other/tool 1.0", "amd64", true, base, libLayer["3.17"], layerBlob("policy-tool-1", 12*KiB, true))
	tool2 := image("other/tool 2.0", "amd64", true, base, libLayer["3.19"], layerBlob("policy-tool-2", 14*KiB, true))
	var build [9]*manifest // build[n] is CI build n
	for n := 1; n <= 8; n++ {
		from := "3.19"
		if n <= 3 {
			from = "3.18"
		}
		build[n] = image(fmt.Sprintf("team/app build %d", n), "amd64", true, base, libLayer[from], layerBlob(fmt.Sprintf("policy-app-%d", n), (16+4*n)*KiB, true))
	}
	refs := map[string]*manifest{"tool-1": tool1, "tool-2": tool2}
	for v, m := range baseImg {
		refs["base-"+v] = m
	}
	for n := 1; n <= 8; n++ {
		refs[fmt.Sprintf("build-%d", n)] = build[n]
	}
	refOf := map[digest.Digest]string{}
	for r, m := range refs {
		refOf[m.digest] = r
	}
	ociDir := filepath.Join(t.TempDir(), "oci")
	if err := writeOCILayout(ociDir, refs); err != nil {
		t.Fatal(err)
	}

	// The pushes, in the order skopeo makes them, each dated age before the run:
	// the dates keep the push order. Releases are re-tags of builds; build-6's
	// pipeline was slow, so build-7 and build-8 landed before it; v1.1.0 is pushed
	// twice, and its second push is the one that counts.
	pushes := []struct {
		repo, tag string
		m         *manifest
		age       time.Duration
	}{
		{"library/base", "3.17", baseImg["3.17"], 60 * day},
		{"library/base", "3.18", baseImg["3.18"], 50 * day},
		{"library/base", "3.19", baseImg["3.19"], 45 * day},
		{"other/tool", "1.0", tool1, 40 * day},
		{"other/tool", "2.0", tool2, 30 * day},
		{"team/app", "build-1", build[1], 10 * day},
		{"team/app", "build-2", build[2], 9 * day},
		{"team/app", "v1.0.0", build[2], 8*day + 12*time.Hour},
		{"team/app", "build-3", build[3], 8 * day},
		{"team/app", "build-4", build[4], 7 * day},
		{"team/app", "v1.1.0", build[4], 6*day + 12*time.Hour}, // pushed again below
		{"team/app", "build-5", build[5], 6 * day},
		{"team/app", "v1.2.0", build[5], 5*day + 12*time.Hour},
		{"team/app", "build-7", build[7], 5 * day},
		{"team/app", "v2.0.0-rc.1", build[7], 4*day + 12*time.Hour},
		{"team/app", "build-8", build[8], 4 * day},
		{"team/app", "latest", build[8], 3*day + 12*time.Hour},
		{"team/app", "build-6", build[6], 3*day + 6*time.Hour}, // just outside pushedWithin 72h
		{"team/app", "v1.1.0", build[4], 2 * day},              // within 72h
	}
	for i := 1; i < len(pushes); i++ {
		if pushes[i].age >= pushes[i-1].age {
			t.Fatalf("push %d (%s:%s) is dated no later than the one before it", i, pushes[i].repo, pushes[i].tag)
		}
	}

	// The expectation, from the pushes above and the policy below:
	//   team/app: keepTags[0] keeps the 2 most recently pushed ^build- tags, build-6
	//     and build-8 (not build-7, pushed before build-6); [1] keeps latest; [2] the
	//     2 highest versions among ^v, v2.0.0-rc.1 (a 2.0.0 pre-release ranks above
	//     1.2.0) and v1.2.0; [3] whatever was pushed within 72h: only v1.1.0, pushed
	//     again 2 days ago. The other 7 tags go. build-4, build-5 and build-7 name
	//     images that kept tags still name; build-1, build-2 (with v1.0.0) and
	//     build-3 name images nothing else keeps.
	//   library/base: no pattern matches its tags and none is younger than 72h, so no
	//     entry keeps any; without allowEmpty the most recently pushed, 3.19, stays
	//     (kept by safety) and 3.17 and 3.18 go.
	//   other/tool: no policy matches; both tags stay.
	wantDeleted := map[string]bool{
		"team/app:build-1": true, "team/app:build-2": true, "team/app:build-3": true, "team/app:build-4": true,
		"team/app:build-5": true, "team/app:build-7": true, "team/app:v1.0.0": true,
		"library/base:3.17": true, "library/base:3.18": true,
	}
	// What that frees (deleteUntagged): the images of build-1..3 and base 3.17 and
	// 3.18 (manifest and config), the build-1..3 layers and the base:3.18 layer,
	// which only they use. The base layer is everywhere, the 3.17 layer is in
	// other/tool:1.0, the 3.19 layer in kept images.
	wantFreedNames := []string{"layer policy-lib-3.18"}
	for _, n := range []string{"team/app build 1", "team/app build 2", "team/app build 3", "library/base 3.17", "library/base 3.18"} {
		wantFreedNames = append(wantFreedNames, "manifest "+n, "config "+n)
	}
	for n := 1; n <= 3; n++ {
		wantFreedNames = append(wantFreedNames, fmt.Sprintf("layer policy-app-%d", n))
	}

	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(`policies:
  - repositories: ["team/**", "library/*"]
    deleteUntagged: true
    keepTags:
      - patterns: ["^build-"]
        mostRecentlyPushedCount: 2
      - patterns: ["^latest$"]
      - patterns: ["^v"]
        semverCount: 2
      - pushedWithin: 72h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	const policyName = "policies[0] (team/**, library/*)"

	// Push, one at a time, through a writable registry.
	reg := startRegistry(t, root)
	var firstV110 time.Time // the mtime of v1.1.0's link after its first push
	for _, p := range pushes {
		flags := []string{"--dest-tls-verify=false", "--preserve-digests"}
		if _, err := sk.copy(context.Background(), flags, "oci:"+ociDir+":"+refOf[p.m.digest], "docker://"+reg.addr+"/"+p.repo+":"+p.tag); err != nil {
			t.Fatalf("push %s:%s: %v\nregistry log:\n%s", p.repo, p.tag, err, tail(reg.log.String(), 3000))
		}
		w.pushed(p.repo, p.tag, p.m)
		if p.tag == "v1.1.0" && firstV110.IsZero() {
			fi, err := os.Stat(tagLinkPath(root, p.repo, p.tag))
			if err != nil {
				t.Fatal(err)
			}
			firstV110 = fi.ModTime()
		}
	}
	for repo, tags := range w.tags {
		for tag, m := range tags {
			if code, d, _ := reg.headManifest(t, repo, tag); code != 200 || d != m.digest {
				t.Fatalf("HEAD %s:%s after the pushes = %d %s, want 200 %s", repo, tag, code, d, m.digest)
			}
		}
	}
	t.Logf("pushed %d tags (%d pushes) in %s", len(tagLinks(t, root)), len(pushes), time.Since(start).Round(time.Millisecond))

	// The premise of the dates set below: the current link's mtime follows the push
	// order, a push of the same manifest again included.
	lastPush := map[string]int{}
	for i, p := range pushes {
		lastPush[p.repo+":"+p.tag] = i
	}
	order := sortedKeys(lastPush)
	sort.Slice(order, func(i, j int) bool { return lastPush[order[i]] < lastPush[order[j]] })
	var prev time.Time
	for _, k := range order {
		repo, tag, _ := strings.Cut(k, ":")
		fi, err := os.Stat(tagLinkPath(root, repo, tag))
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().Before(prev) {
			t.Errorf("the current link of %s is older than that of the tag pushed before it (%s < %s)", k, fi.ModTime(), prev)
		}
		prev = fi.ModTime()
		if k == "team/app:v1.1.0" && !fi.ModTime().After(firstV110) {
			t.Errorf("pushing team/app:v1.1.0 again did not rewrite its current link (mtime %s, after the first push %s)", fi.ModTime(), firstV110)
		}
	}

	// Date the storage: everything 2 days old (so that no blob grace interferes),
	// then each tag's current link at its push's age.
	now := time.Now().Truncate(time.Second)
	ageTree(t, root, now.Add(-2*day))
	pushedAt := map[string]time.Time{}
	for _, p := range pushes {
		at := now.Add(-p.age)
		pushedAt[p.repo+":"+p.tag] = at
		if err := os.Chtimes(tagLinkPath(root, p.repo, p.tag), at, at); err != nil {
			t.Fatal(err)
		}
	}
	filesBefore := files(t, root)
	tagsBefore := tagLinks(t, root)

	// A policy file that does not parse: exit 2, before the storage or the registry
	// is looked at (the registry is still writable: a probe would answer 4).
	badPolicy := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badPolicy, []byte("policies:\n  - repositories: [\"team/**\"]\n    keepTags:\n      - patterns: [\"^v(\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := regsweepExit(t, "gc", reg.cfg, "--policy", badPolicy, "--grace", "0"); code != 2 || !strings.Contains(stderr, "^v(") {
		t.Errorf("gc --policy with a bad pattern: exit %d, want 2 naming the pattern\n%s", code, stderr)
	}
	// A real policy run while the registry accepts pushes: refused, nothing deleted.
	if code, _, stderr := regsweepExit(t, "gc", reg.cfg, "--policy", policyFile, "--grace", "0"); code != 4 || !strings.Contains(stderr, "maintenance.readonly") {
		t.Errorf("gc --policy against a writable docker-registry: exit %d, want 4 naming maintenance.readonly\n%s", code, stderr)
	}
	if after := files(t, root); !sameStrings(filesBefore, after) {
		t.Fatalf("refused runs changed the storage: %d files before, %d after", len(filesBefore), len(after))
	}
	reg.stop(t)
	ro := startRegistryMode(t, root, true)

	// Dry run.
	dry := policyGC(t, "gc", ro.cfg, "--policy", policyFile, "--grace", "0", "-d")
	gotDeleted := map[string]bool{}
	for _, it := range dry.Delete.Tags {
		k := it.Repository + ":" + it.Tag
		gotDeleted[k] = true
		if m := w.tags[it.Repository][it.Tag]; m == nil || it.Digest != m.digest {
			t.Errorf("delete.tags %s names %s, pushed %v", k, it.Digest, m)
		}
		if !it.PushedAt.Equal(pushedAt[k]) {
			t.Errorf("delete.tags %s: pushed_at %s, the test dated it %s", k, it.PushedAt, pushedAt[k])
		}
		if it.Policy != policyName || !strings.HasPrefix(it.Reason, "no keepTags entry keeps it") {
			t.Errorf("delete.tags %s: policy %q, reason %q", k, it.Policy, it.Reason)
		}
		if !strings.HasSuffix(filepath.ToSlash(it.Path), "/repositories/"+it.Repository+"/_manifests/tags/"+it.Tag) {
			t.Errorf("delete.tags %s: path %q is not the tag's directory", k, it.Path)
		}
	}
	if !sameSet(gotDeleted, wantDeleted) {
		t.Errorf("dry run deletes tags %v, want %v (only planned: %v, not planned: %v)",
			sortedKeys(gotDeleted), sortedKeys(wantDeleted), setDiff(gotDeleted, wantDeleted), setDiff(wantDeleted, gotDeleted))
		for _, it := range dry.Delete.Tags {
			t.Logf("  planned %s:%s: %s", it.Repository, it.Tag, it.Reason)
		}
	}
	safety := map[string]bool{}
	for _, k := range dry.Kept {
		if k.Kind == "tag" {
			safety[k.Repository+":"+k.Tag] = true
		}
	}
	if !sameSet(safety, map[string]bool{"library/base:3.19": true}) {
		t.Errorf("tags kept by a safety rule: %v, want library/base:3.19 (the last tag, no allowEmpty)", sortedKeys(safety))
	}
	if len(dry.Warnings) != 0 {
		t.Errorf("dry run warnings: %+v", dry.Warnings)
	}

	// The model after the policy: the deleted tags untagged; in the policy's
	// repositories (deleteUntagged) the manifests left untagged are dead, and
	// other/tool has none. So what goes is what they reach and no kept tag does.
	deletedRoots := map[string][]*manifest{}
	for k := range wantDeleted {
		repo, tag, _ := strings.Cut(k, ":")
		deletedRoots[repo] = append(deletedRoots[repo], w.tags[repo][tag])
		delete(w.tags[repo], tag)
	}
	wantGone := w.expectedGone(true)
	var wantBytes int64
	var goneNames []string
	for d := range wantGone {
		wantBytes += w.blobs[d].size()
		goneNames = append(goneNames, w.blobs[d].name)
	}
	if !sameStrings(goneNames, wantFreedNames) {
		t.Fatalf("test model: freed blobs %v, the comment says %v", goneNames, wantFreedNames)
	}
	wantRevs := map[string]bool{}
	for k := range w.untagged() {
		wantRevs[k] = true
	}
	if len(wantRevs) != 5 {
		t.Fatalf("test model: %d untagged manifests, want 5: %v", len(wantRevs), sortedKeys(wantRevs))
	}
	// Per repository: the freed blobs its removed tags reach (the base:3.18 layer
	// counts in both).
	repoFreed := map[string]map[digest.Digest]bool{}
	for repo, ms := range deletedRoots {
		repoFreed[repo] = map[digest.Digest]bool{}
		for d := range reachable(ms) {
			if wantGone[d] {
				repoFreed[repo][d] = true
			}
		}
	}
	sizeOf := func(s map[digest.Digest]bool) (n int64) {
		for d := range s {
			n += w.blobs[d].size()
		}
		return n
	}

	if got := dry.blobSet(); !sameSet(got, wantGone) {
		t.Errorf("dry run deletes blobs %s, want %s", w.nameSet(got), w.nameSet(wantGone))
	}
	if got := dry.manifestSet(); !sameSet(got, wantRevs) {
		t.Errorf("dry run deletes revisions %v, want %v", sortedKeys(got), sortedKeys(wantRevs))
	}
	if s := dry.Summary; s.DeleteTags != len(wantDeleted) || s.DeleteBlobs != len(wantGone) || s.DeleteBytes != wantBytes || s.DeleteManifests != len(wantRevs) {
		t.Errorf("dry run summary: %d tags, %d blobs, %d bytes, %d manifests; want %d, %d, %d, %d",
			s.DeleteTags, s.DeleteBlobs, s.DeleteBytes, s.DeleteManifests, len(wantDeleted), len(wantGone), wantBytes, len(wantRevs))
	}
	ret := dry.Retention
	if ret == nil {
		t.Fatalf("dry run with --policy reports no retention")
	}
	if ret.File != policyFile || ret.FreedBytes <= 0 || ret.FreedBlobs != len(wantGone) || ret.FreedBytes != wantBytes || ret.FreedManifests != len(wantRevs) {
		t.Errorf("retention: file %q, freed %d blobs, %d bytes, %d manifests; want %q, %d, %d, %d",
			ret.File, ret.FreedBlobs, ret.FreedBytes, ret.FreedManifests, policyFile, len(wantGone), wantBytes, len(wantRevs))
	}
	wantPolicy := retentionCounts{Tags: 16, DeleteTags: len(wantDeleted), KeptBySafety: 1, FreedBlobs: len(wantGone), FreedBytes: wantBytes, FreedManifests: len(wantRevs)}
	if len(ret.Policies) != 1 {
		t.Errorf("retention.policies: %+v, want one", ret.Policies)
	} else if p := ret.Policies[0]; p.Policy != policyName || p.Index != 0 || !p.DeleteUntagged || p.Repositories != 2 || p.retentionCounts != wantPolicy {
		t.Errorf("retention.policies[0] = %+v, want %q, index 0, delete_untagged, 2 repositories, %+v", p, policyName, wantPolicy)
	}
	wantRepos := map[string]retentionCounts{
		"team/app": {Tags: 13, DeleteTags: 7, FreedBlobs: len(repoFreed["team/app"]), FreedBytes: sizeOf(repoFreed["team/app"]), FreedManifests: 3},
		"library/base": {Tags: 3, DeleteTags: 2, KeptBySafety: 1, FreedBlobs: len(repoFreed["library/base"]),
			FreedBytes: sizeOf(repoFreed["library/base"]), FreedManifests: 2},
	}
	gotRepos := map[string]bool{}
	for _, r := range ret.Repositories {
		gotRepos[r.Name] = true
		want, ok := wantRepos[r.Name]
		if !ok || r.Policy != policyName || r.retentionCounts != want {
			t.Errorf("retention.repositories %s = %+v (policy %q), want %+v (policy %q; other/tool has none)", r.Name, r.retentionCounts, r.Policy, want, policyName)
		}
	}
	if len(gotRepos) != len(wantRepos) {
		t.Errorf("retention.repositories names %v, want team/app and library/base", sortedKeys(gotRepos))
	}
	for _, it := range dry.Delete.Manifests {
		if it.Repository == "other/tool" {
			t.Errorf("dry run deletes other/tool@%s, which no policy matches", it.Digest)
		}
	}
	if after := files(t, root); !sameStrings(filesBefore, after) {
		t.Fatalf("the dry run changed the storage")
	}
	t.Logf("dry run: %d tags to delete (%s), %d blobs (%d bytes), %d revisions; retention.freed_bytes %d",
		len(dry.Delete.Tags), strings.Join(sortedKeys(gotDeleted), " "), dry.Summary.DeleteBlobs, dry.Summary.DeleteBytes, dry.Summary.DeleteManifests, ret.FreedBytes)
	if t.Failed() {
		t.FailNow()
	}

	// The real run, while the registry serves the storage read-only.
	blobsBefore := blobFiles(t, root)
	revsBefore := links(t, root, "/_manifests/revisions/")
	layersBefore := links(t, root, "/_layers/")
	runStart := time.Now()
	swept := policyGC(t, "gc", ro.cfg, "--policy", policyFile, "--grace", "0")
	runTime := time.Since(runStart)
	res := swept.Result
	if res == nil {
		t.Fatalf("the real run reported no result")
	}
	if len(swept.Registry) == 0 || swept.Registry[0].State != "read-only" {
		t.Errorf("real run: registry %+v, want read-only", swept.Registry)
	}
	blobsAfter := blobFiles(t, root)
	gone := map[digest.Digest]bool{}
	var goneBytes int64
	for d, size := range blobsBefore {
		if _, ok := blobsAfter[d]; !ok {
			gone[d] = true
			goneBytes += size
		}
	}
	if !sameSet(gone, wantGone) {
		t.Errorf("blobs gone %s, want %s", w.nameSet(gone), w.nameSet(wantGone))
	}
	if res.DeletedTags != len(wantDeleted) || res.KeptTags != 0 || res.DeletedManifests != len(wantRevs) || res.DeletedBlobs != len(gone) || res.AlreadyDone != 0 || res.Missing != 0 {
		t.Errorf("result %+v: want %d deleted tags, none kept, %d manifests, %d blobs", *res, len(wantDeleted), len(wantRevs), len(gone))
	}
	// Freed bytes: what the filesystem lost, as planned, and all of it because of
	// the tags the policy removed (nothing was garbage before).
	if res.FreedBytes != goneBytes || goneBytes != dry.Summary.DeleteBytes || goneBytes != ret.FreedBytes || goneBytes != wantBytes {
		t.Errorf("freed bytes: filesystem delta %d, result.freed_bytes %d, dry run delete_bytes %d, retention.freed_bytes %d, model %d",
			goneBytes, res.FreedBytes, dry.Summary.DeleteBytes, ret.FreedBytes, wantBytes)
	}
	tagsAfter := tagLinks(t, root)
	for k, d := range tagsBefore {
		_, kept := tagsAfter[k]
		switch {
		case wantDeleted[k]:
			repo, tag, _ := strings.Cut(k, ":")
			if _, err := os.Stat(filepath.Dir(filepath.Dir(tagLinkPath(root, repo, tag)))); !os.IsNotExist(err) {
				t.Errorf("tag directory of %s still there (%v)", k, err)
			}
		case !kept || tagsAfter[k] != d:
			t.Errorf("kept tag %s: %s before, %s after", k, d, tagsAfter[k])
		}
	}
	if len(tagsAfter) != len(tagsBefore)-len(wantDeleted) {
		t.Errorf("%d tags after, want %d", len(tagsAfter), len(tagsBefore)-len(wantDeleted))
	}
	gotRevs := map[string]bool{}
	for _, k := range setDiff(revsBefore, links(t, root, "/_manifests/revisions/")) {
		gotRevs[k] = true
	}
	if !sameSet(gotRevs, wantRevs) {
		t.Errorf("revision links deleted %v, want %v", sortedKeys(gotRevs), sortedKeys(wantRevs))
	}
	layersAfter := links(t, root, "/_layers/")
	if n := len(setDiff(layersBefore, layersAfter)); n != res.DeletedLayerLinks || n == 0 {
		t.Errorf("%d layer links deleted, result says %d", n, res.DeletedLayerLinks)
	}
	for l := range layersAfter {
		if _, ok := blobsAfter[digest.Digest(l[strings.Index(l, "@")+1:])]; !ok {
			t.Errorf("layer link %s names a deleted blob", l)
		}
	}

	// Through the registry: every kept tag pulls with the digest pushed, every
	// removed tag and freed revision answers 404, and build-7's image (its tag
	// removed, v2.0.0-rc.1 kept) is still there by digest.
	pulls := 0
	for _, repo := range sortedKeys(w.tags) {
		for _, tag := range sortedKeys(w.tags[repo]) {
			m := w.tags[repo][tag]
			dst := filepath.Join(t.TempDir(), "pull")
			if _, err := sk.copy(context.Background(), []string{"--src-tls-verify=false", "--preserve-digests"}, "docker://"+ro.addr+"/"+repo+":"+tag, "oci:"+dst+":"+tag); err != nil {
				t.Errorf("pull %s:%s after the sweep: %v\nregistry log:\n%s", repo, tag, err, tail(ro.log.String(), 3000))
				continue
			}
			if got := pulledDigest(t, dst, true); got != m.digest {
				t.Errorf("pull %s:%s: got %s, pushed %s", repo, tag, got, m.digest)
			}
			pulls++
		}
	}
	for _, k := range sortedKeys(wantDeleted) {
		repo, tag, _ := strings.Cut(k, ":")
		if code, _, _ := ro.headManifest(t, repo, tag); code != 404 {
			t.Errorf("HEAD %s after the sweep = %d, want 404", k, code)
		}
	}
	for _, k := range sortedKeys(wantRevs) {
		repo, d, _ := strings.Cut(k, "@")
		if code, _, _ := ro.headManifest(t, repo, d); code != 404 {
			t.Errorf("HEAD %s (untagged by the policy) after the sweep = %d, want 404", k, code)
		}
	}
	if code, _, _ := ro.headManifest(t, "team/app", build[7].digest.String()); code != 200 {
		t.Errorf("HEAD team/app@%s (build-7, still v2.0.0-rc.1) after the sweep = %d, want 200", build[7].digest, code)
	}

	// Nothing is left for the same policy to do.
	again := policyGC(t, "gc", ro.cfg, "--policy", policyFile, "--grace", "0", "-d")
	if s := again.Summary; s.DeleteTags != 0 || s.DeleteBlobs != 0 || s.DeleteManifests != 0 {
		t.Errorf("a dry run after the sweep still plans %+v", s)
	}
	ro.stop(t)

	t.Logf("real run in %s: deleted %d tags, %d revisions, %d blobs, %d layer links; freed %d bytes (filesystem delta %d, dry run delete_bytes %d, retention.freed_bytes %d)",
		runTime.Round(time.Millisecond), res.DeletedTags, res.DeletedManifests, res.DeletedBlobs, res.DeletedLayerLinks, res.FreedBytes, goneBytes, dry.Summary.DeleteBytes, ret.FreedBytes)
	t.Logf("after the sweep: %d kept tags pull with their pushed digests, %d removed tags and %d freed revisions answer 404; total %s",
		pulls, len(wantDeleted), len(wantRevs), time.Since(start).Round(time.Millisecond))
}

// blobSet is the dry run's delete.blobs as a set.
func (r *policyReport) blobSet() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, b := range r.Delete.Blobs {
		out[b.Digest] = true
	}
	return out
}

// manifestSet is delete.manifests as "repo@digest".
func (r *policyReport) manifestSet() map[string]bool {
	out := map[string]bool{}
	for _, m := range r.Delete.Manifests {
		out[m.Repository+"@"+m.Digest.String()] = true
	}
	return out
}
