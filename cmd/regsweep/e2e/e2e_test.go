//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	registryBin, skopeoBin, regsweepBin string
	skipReason                          string
	varLibContainersExisted             bool
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var missing []string
	var err error
	if registryBin, err = exec.LookPath("docker-registry"); err != nil {
		missing = append(missing, "docker-registry")
	}
	if skopeoBin, err = exec.LookPath("skopeo"); err != nil {
		missing = append(missing, "skopeo")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not on PATH (Debian: apt-get install docker-registry skopeo)", strings.Join(missing, " and "))
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL: e2e: CI=true and "+msg)
			return 1
		}
		skipReason = msg
		return m.Run()
	}
	_, err = os.Stat("/var/lib/containers")
	varLibContainersExisted = err == nil

	dir, err := os.MkdirTemp("", "regsweep-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	regsweepBin = filepath.Join(dir, "regsweep")
	start := time.Now()
	build := exec.Command("go", "build", "-o", regsweepBin, "github.com/regsweep/regsweep/cmd/regsweep")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: e2e: go build ./cmd/regsweep:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built regsweep in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// scenario is the images, the world they make, and the storage root as the
// registry left it after the pushes and deletes.
type scenario struct {
	w     *world
	root  string // storage after pushes and API deletes; never modified afterwards
	sk    *skopeoEnv
	chain [4]*manifest
	appX1 *manifest // team/app:v1 before it was overwritten: untagged
	multi *manifest // OCI index: multi:latest
	list  *manifest // Docker manifest list: legacy/list:latest
	pArm  *manifest // child of multi, also pushed as plat:arm64, which is deleted
	pAmd  *manifest // child of multi, also pushed as plat:amd64
	refB  *manifest // untagged referrer (SBOM) of chain:b, which stays tagged
	refD  *manifest // untagged referrer (signature) of chain:d, which is deleted
}

func TestE2E(t *testing.T) {
	if skipReason != "" {
		t.Skip("e2e: " + skipReason + "; set CI=true to make this a failure")
	}
	t.Cleanup(func() {
		if _, err := os.Stat("/var/lib/containers"); err == nil && !varLibContainersExisted {
			t.Errorf("skopeo created /var/lib/containers despite its private environment")
		}
	})
	// A failed phase stops the test only if later phases need what it made.
	phase := func(name string, required bool, fn func(t *testing.T)) {
		t.Helper()
		start := time.Now()
		ok := t.Run(name, fn)
		t.Logf("phase %-38s %8s", name, time.Since(start).Round(time.Millisecond))
		if !ok && required {
			t.FailNow()
		}
	}
	// The storage and skopeo's environment outlive the phase that makes them.
	s := &scenario{w: newWorld(), root: filepath.Join(t.TempDir(), "storage"), sk: newSkopeoEnv(t)}
	phase("push-and-delete", true, func(t *testing.T) { setup(t, s) })
	if dir := os.Getenv("REGSWEEP_E2E_SAVE"); dir != "" {
		// For the Beam pipeline's equality test (its own module): the storage
		// the real registry wrote, as pushed and deleted.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyTree(t, s.root, dir)
	}
	phase("storage-matches-model", true, func(t *testing.T) { checkStorageMatchesModel(t, s) })
	phase("dry-run-vs-2.8.2", false, func(t *testing.T) { dryRunDifferential(t, s) })
	phase("report-matches-gc", false, func(t *testing.T) { reportMatchesGC(t, s) })
	phase("inspect-matches-skopeo", false, func(t *testing.T) { inspectMatchesSkopeo(t, s) })
	for _, mode := range []struct {
		name     string
		untagged bool
		workers  string
	}{{"default", false, "1"}, {"default", false, "64"}, {"delete-untagged", true, "1"}, {"delete-untagged", true, "64"}} {
		phase(fmt.Sprintf("sweep-%s-workers-%s", mode.name, mode.workers), false, func(t *testing.T) { sweepAndPull(t, s, mode.untagged, mode.workers) })
	}
	phase("2.8.2-delete-untagged-breaks-indexes", false, func(t *testing.T) { distBreaksIndexes(t, s) })
	phase("sweep-refused-while-writable-then-read-only", false, func(t *testing.T) { sweepWhileServing(t, s) })
	phase("prune-empty-repository", false, func(t *testing.T) { pruneEmptyRepository(t, s) })
}

// sweepWhileServing runs a real sweep against a running docker-registry on the same
// storage: refused (exit 4, nothing deleted, no upload left) while it accepts
// pushes; done, with every tag pulling through it afterwards, once it runs with
// maintenance.readonly.
func sweepWhileServing(t *testing.T, s *scenario) {
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	before := files(t, root)
	reg := startRegistryMode(t, root, false)
	code, _, stderr := regsweepExit(t, "gc", reg.cfg, "-m", "--grace", "0")
	if code != 4 || !strings.Contains(stderr, "maintenance.readonly") {
		t.Fatalf("sweep against a writable docker-registry: exit %d, want 4 naming maintenance.readonly\n%s", code, stderr)
	}
	if after := files(t, root); !sameStrings(before, after) {
		t.Errorf("the refused sweep changed the storage: %d files before, %d after", len(before), len(after))
	}
	reg.stop(t)

	reg = startRegistryMode(t, root, true)
	code, stdout, stderr := regsweepExit(t, "gc", reg.cfg, "-m", "--grace", "0")
	if code != 0 {
		t.Fatalf("sweep against a read-only docker-registry: exit %d\n%s", code, stderr)
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Registry) == 0 || rep.Registry[0].State != "read-only" || rep.Result == nil || rep.Result.DeletedBlobs == 0 {
		t.Fatalf("report: registry %+v, result %+v", rep.Registry, rep.Result)
	}
	for repo, tags := range s.w.tags {
		for tag, m := range tags {
			flags := []string{"--src-tls-verify=false", "--preserve-digests"}
			if m.isIndex() {
				flags = append(flags, "--all")
			}
			dst := filepath.Join(t.TempDir(), "pull")
			dest := "dir:" + dst
			if m.oci {
				dest = "oci:" + dst + ":" + tag
			}
			if _, err := s.sk.copy(context.Background(), flags, "docker://"+reg.addr+"/"+repo+":"+tag, dest); err != nil {
				t.Errorf("pull %s:%s through the read-only registry after the sweep: %v", repo, tag, err)
				continue
			}
			if got := pulledDigest(t, dst, m.oci); got != m.digest {
				t.Errorf("pull %s:%s: got %s, pushed %s", repo, tag, got, m.digest)
			}
		}
	}
}

// files lists every path under root (directories included), relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setup builds the images, pushes them to a fresh registry, deletes some manifests
// through the API and stops the registry.
func setup(t *testing.T, s *scenario) {
	const KiB = 1024

	// Layers. base is in every image of every repository, OCI and Docker alike.
	base := layerBlob("base", 48*KiB, true)
	baseDocker := *base
	baseDocker.mediaType = mtDockerLayer
	l1 := layerBlob("l1", 32*KiB, true)
	l2 := layerBlob("l2", 40*KiB, true)
	l3 := layerBlob("l3", 24*KiB, true)

	// chain: A <- B <- C <- D, each one layer on top of the previous one's.
	s.chain[0] = image("chain-a", "amd64", true, base)
	s.chain[1] = image("chain-b", "amd64", true, base, l1)
	s.chain[2] = image("chain-c", "amd64", true, base, l1, l2)
	s.chain[3] = image("chain-d", "amd64", true, base, l1, l2, l3)
	// team/app: v1 is pushed, then overwritten; X1 stays as an untagged revision.
	s.appX1 = image("app-x1", "amd64", true, base, l1, layerBlob("app-x1-only", 20*KiB, true))
	appX2 := image("app-x2", "amd64", true, base, l1, layerBlob("app-x2-only", 28*KiB, true))
	// multi: an OCI index of two platform images; plat: the same two images by tag.
	s.pAmd = image("p-amd64", "amd64", true, base, layerBlob("p-amd64-only", 36*KiB, true))
	s.pArm = image("p-arm64", "arm64", true, base, layerBlob("p-arm64-only", 30*KiB, true))
	s.multi = index("multi", true, s.pAmd, s.pArm)
	// legacy/docker: Docker schema2 images; legacy/list: a Docker manifest list.
	dk1 := image("dk-v1", "amd64", false, &baseDocker, layerBlob("dk-v1-only", 22*KiB, false))
	dk0 := image("dk-old", "amd64", false, &baseDocker, layerBlob("dk-old-only", 26*KiB, false))
	dla := image("dl-amd64", "amd64", false, &baseDocker, layerBlob("dl-amd64-only", 18*KiB, false))
	dlb := image("dl-arm64", "arm64", false, &baseDocker, layerBlob("dl-arm64-only", 16*KiB, false))
	s.list = index("legacy-list", false, dla, dlb)
	// chain: untagged OCI 1.1 referrers of B (live) and of D (deleted below); both
	// share the empty config.
	s.refB = referrer("sbom-of-chain-b", "application/spdx+json", s.chain[1], rawBlob("sbom-b", "application/spdx+json", 6*KiB))
	s.refD = referrer("sig-of-chain-d", "application/vnd.dev.cosign.artifact.sig.v1+json", s.chain[3], rawBlob("sig-d", "application/vnd.dev.cosign.simplesigning.v1+json", 2*KiB))

	ociDir := filepath.Join(t.TempDir(), "oci")
	refs := map[string]*manifest{
		"chain-a": s.chain[0], "chain-b": s.chain[1], "chain-c": s.chain[2], "chain-d": s.chain[3],
		"app-x1": s.appX1, "app-x2": appX2, "multi": s.multi, "p-amd64": s.pAmd, "p-arm64": s.pArm,
		"ref-b": s.refB, "ref-d": s.refD,
	}
	if err := writeOCILayout(ociDir, refs); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]*manifest{"dk-v1": dk1, "dk-old": dk0, "dl": s.list}
	dirRoot := t.TempDir()
	for n, m := range dirs {
		if err := writeDir(filepath.Join(dirRoot, n), m); err != nil {
			t.Fatal(err)
		}
	}

	reg := startRegistry(t, s.root)
	type push struct {
		src, repo, tag string
		m              *manifest
	}
	pushes := []push{
		{"oci:" + ociDir + ":chain-a", "chain", "a", s.chain[0]},
		{"oci:" + ociDir + ":chain-b", "chain", "b", s.chain[1]},
		{"oci:" + ociDir + ":chain-c", "chain", "c", s.chain[2]},
		{"oci:" + ociDir + ":chain-d", "chain", "d", s.chain[3]},
		// skopeo pushes by tag only: push the referrers under a tag, then move the
		// tag to A, leaving them untagged.
		{"oci:" + ociDir + ":ref-b", "chain", "tmp", s.refB},
		{"oci:" + ociDir + ":ref-d", "chain", "tmp", s.refD},
		{"oci:" + ociDir + ":chain-a", "chain", "tmp", s.chain[0]},
		{"oci:" + ociDir + ":app-x1", "team/app", "v1", s.appX1},
		{"oci:" + ociDir + ":app-x2", "team/app", "v1", appX2}, // overwrites v1
		{"oci:" + ociDir + ":app-x2", "team/app", "stable", appX2},
		{"oci:" + ociDir + ":multi", "multi", "latest", s.multi},
		{"oci:" + ociDir + ":p-amd64", "plat", "amd64", s.pAmd},
		{"oci:" + ociDir + ":p-arm64", "plat", "arm64", s.pArm},
		{"dir:" + filepath.Join(dirRoot, "dk-v1"), "legacy/docker", "v1", dk1},
		{"dir:" + filepath.Join(dirRoot, "dk-old"), "legacy/docker", "old", dk0},
		{"dir:" + filepath.Join(dirRoot, "dl"), "legacy/list", "latest", s.list},
	}
	for _, p := range pushes {
		flags := []string{"--dest-tls-verify=false", "--preserve-digests"}
		if p.m.isIndex() {
			flags = append(flags, "--all")
		}
		if _, err := s.sk.copy(context.Background(), flags, p.src, "docker://"+reg.addr+"/"+p.repo+":"+p.tag); err != nil {
			t.Fatalf("push %s:%s: %v\nregistry log:\n%s", p.repo, p.tag, err, reg.log)
		}
		s.w.pushed(p.repo, p.tag, p.m)
	}

	// Every tag resolves, with HEAD, to the digest the test computed.
	for repo, tags := range s.w.tags {
		for tag, m := range tags {
			code, d, ct := reg.headManifest(t, repo, tag)
			if code != 200 || d != m.digest || ct != m.mediaType {
				t.Errorf("HEAD %s:%s = %d %s %q, want 200 %s %q (%s)", repo, tag, code, d, ct, m.digest, m.mediaType, m.name)
			}
		}
	}
	// 2.8.2 refuses to delete by tag (it deletes by digest, taking every tag of the
	// digest with it). Logged, not asserted: the deletes below are by digest anyway.
	code, body := reg.deleteManifest(t, "chain", "c")
	t.Logf("DELETE /v2/chain/manifests/c (by tag) = %d %s", code, body)

	deletes := []struct {
		repo string
		m    *manifest
	}{
		{"chain", s.chain[2]}, {"chain", s.chain[3]},
		{"plat", s.pArm}, // its digest stays a child of multi:latest
		{"legacy/docker", dk0},
	}
	for _, d := range deletes {
		if code, body := reg.deleteManifest(t, d.repo, d.m.digest.String()); code != 202 {
			t.Fatalf("DELETE /v2/%s/manifests/%s = %d %s, want 202", d.repo, d.m.digest, code, body)
		}
		s.w.deletedManifest(d.repo, d.m)
		if code, _, _ := reg.headManifest(t, d.repo, d.m.digest.String()); code != 404 {
			t.Errorf("HEAD %s@%s after delete = %d, want 404", d.repo, d.m.digest, code)
		}
	}
	if code, _, _ := reg.headManifest(t, "multi", s.pArm.digest.String()); code != 200 {
		t.Errorf("HEAD multi@%s (child of multi:latest, deleted from plat) = %d, want 200", s.pArm.digest, code)
	}
	reg.stop(t)
}

// checkStorageMatchesModel checks that the model the expectations come from is the
// storage the registry wrote: exactly the blobs, revision links and tags it predicts.
func checkStorageMatchesModel(t *testing.T, s *scenario) {
	blobs := blobFiles(t, s.root)
	got := map[digest.Digest]bool{}
	for d, size := range blobs {
		got[d] = true
		if b := s.w.blobs[d]; b != nil && b.size() != size {
			t.Errorf("blob %s: %d bytes on disk, built %d", b.name, size, b.size())
		}
	}
	if want := s.w.all(); !sameSet(got, want) {
		t.Errorf("blobs on disk differ from the pushed ones: extra %v, missing %s", setDiff(got, want), s.w.names(setDiff(want, got)...))
	}
	revs := links(t, s.root, "/_manifests/revisions/")
	wantRevs := map[string]bool{}
	for repo, ms := range s.w.revisions {
		for d := range ms {
			wantRevs[repo+"@"+d.String()] = true
		}
	}
	if !sameSet(revs, wantRevs) {
		t.Errorf("revision links: extra %v, missing %v", setDiff(revs, wantRevs), setDiff(wantRevs, revs))
	}
	tags := tagLinks(t, s.root)
	wantTags := map[string]digest.Digest{}
	for repo, ts := range s.w.tags {
		for tag, m := range ts {
			wantTags[repo+":"+tag] = m.digest
		}
	}
	if fmt.Sprint(tags) != fmt.Sprint(wantTags) {
		t.Errorf("tags on disk %v, want %v", tags, wantTags)
	}
	t.Logf("storage: %d blobs, %d revision links, %d tags, %d layer links", len(blobs), len(revs), len(tags), len(links(t, s.root, "/_layers/")))
}

// dryRunDifferential compares regsweep gc --dry-run with docker-registry 2.8.2
// garbage-collect --dry-run, in both modes, with 1 and 64 workers.
func dryRunDifferential(t *testing.T, s *scenario) {
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	cfg, _ := registryCfg(t, root)
	beforeBlobs := blobFiles(t, root)
	beforeLinks := links(t, root, "/")
	layerLinks := links(t, root, "/_layers/")

	for _, untagged := range []bool{false, true} {
		name := "default"
		var flags []string
		if untagged {
			name, flags = "delete-untagged", []string{"-m"}
		}
		t.Run(name, func(t *testing.T) {
			dist := distGC(t, cfg, append([]string{"--dry-run"}, flags...)...)
			wantDist, wantDistManifests := s.w.dist282(untagged)
			want := s.w.expectedGone(untagged)
			if !sameSet(want, func() map[digest.Digest]bool {
				r := s.w.all()
				for d := range s.w.live(untagged) {
					delete(r, d)
				}
				return r
			}()) {
				t.Fatalf("test model: expectedGone is not all minus live")
			}

			// 2.8.2 does what its source says (a check of the model of it).
			if !sameSet(dist.blobs, wantDist) {
				t.Errorf("docker-registry 2.8.2 %s: blobs eligible differ from its modelled behaviour: extra %s, missing %s\n%s",
					name, s.w.names(setDiff(dist.blobs, wantDist)...), s.w.names(setDiff(wantDist, dist.blobs)...), dist.raw)
			}
			if !sameSet(dist.manifests, wantDistManifests) {
				t.Errorf("docker-registry 2.8.2 %s: manifests eligible %s, modelled %s", name, s.w.nameSet(dist.manifests), s.w.nameSet(wantDistManifests))
			}

			var reps []*report
			for _, workers := range []string{"1", "64"} {
				rep, _ := regsweep(t, append([]string{"gc", cfg, "-d", "--grace", "0", "--workers", workers}, flags...)...)
				reps = append(reps, rep)
				ours := rep.blobSet()
				if !sameSet(ours, want) {
					t.Errorf("regsweep %s --workers %s: blobs to delete differ from the pushed images: extra %s, missing %s",
						name, workers, s.w.names(setDiff(ours, want)...), s.w.names(setDiff(want, ours)...))
				}
				if !rep.Mode.DryRun || rep.Mode.DeleteUntagged != untagged || rep.Mode.GraceSeconds != 0 {
					t.Errorf("regsweep %s: report mode %+v", name, rep.Mode)
				}
				var wantBytes int64
				for d := range want {
					wantBytes += s.w.blobs[d].size()
				}
				sm := rep.Summary
				if sm.DeleteBlobs != len(want) || sm.DeleteBytes != wantBytes || sm.Blobs != len(s.w.blobs) || sm.KeptByGrace != 0 || sm.Unreadable != 0 {
					t.Errorf("regsweep %s --workers %s: summary %+v; want delete_blobs %d, delete_bytes %d, blobs %d, nothing kept by grace or unreadable",
						name, workers, sm, len(want), wantBytes, len(s.w.blobs))
				}
				if sm.Tags != len(tagLinks(t, root)) || sm.Repositories != len(s.w.revisions) {
					t.Errorf("regsweep %s: summary counts %d tags in %d repositories, want %d in %d", name, sm.Tags, sm.Repositories, len(tagLinks(t, root)), len(s.w.revisions))
				}
				wantLinks := map[string]bool{}
				for l := range layerLinks {
					if want[digest.Digest(l[strings.Index(l, "@")+1:])] {
						wantLinks[l] = true
					}
				}
				if got := rep.linkSet(); !sameSet(got, wantLinks) {
					t.Errorf("regsweep %s: layer links to delete: extra %v, missing %v", name, setDiff(got, wantLinks), setDiff(wantLinks, got))
				}
				wantManifests := map[string]bool{}
				if untagged {
					live := s.w.live(true)
					for k, m := range s.w.untagged() {
						if !live[m.digest] {
							wantManifests[k] = true
						}
					}
				}
				if got := rep.manifestSet(); !sameSet(got, wantManifests) {
					t.Errorf("regsweep %s: manifest revisions to delete: extra %v, missing %v", name, setDiff(got, wantManifests), setDiff(wantManifests, got))
				}
				for _, w := range rep.Warnings {
					t.Errorf("regsweep %s: unexpected warning %+v", name, w)
				}
			}
			if a, b := reps[0], reps[1]; !sameSet(a.blobSet(), b.blobSet()) || !sameSet(a.manifestSet(), b.manifestSet()) || !sameSet(a.linkSet(), b.linkSet()) || a.Summary != b.Summary {
				t.Errorf("regsweep %s: --workers 1 and --workers 64 disagree:\n%+v\n%+v", name, a.Summary, b.Summary)
			}
			ours := reps[0].blobSet()

			// With the default grace period (1h) everything was just pushed: nothing
			// is deleted, and each item that would be is reported as kept by grace.
			graced, _ := regsweep(t, append([]string{"gc", cfg, "-d"}, flags...)...)
			if g := graced.Summary; g.DeleteBlobs != 0 || g.DeleteManifests != 0 || g.DeleteLayerLinks != 0 {
				t.Errorf("regsweep %s with the default 1h grace deletes what was just pushed: %+v", name, g)
			}
			var keptBlobs, keptManifests int
			for _, k := range graced.Kept {
				if k.Reason != "younger than grace" {
					t.Errorf("regsweep %s with the default 1h grace: kept %+v, want reason %q", name, k, "younger than grace")
				}
				switch k.Kind {
				case "blob":
					keptBlobs++
				case "manifest":
					keptManifests++
				}
			}
			if keptBlobs != len(ours) || graced.Summary.KeptByGrace != keptBlobs+keptManifests {
				t.Errorf("regsweep %s with the default 1h grace: %d blobs kept by grace (summary kept_by_grace %d), want the %d it deletes with --grace 0",
					name, keptBlobs, graced.Summary.KeptByGrace, len(ours))
			}
			// docs/design.md: nothing younger than grace is deleted; it is reported as
			// "kept: younger than grace" — so with -m the untagged revision links that
			// --grace 0 deletes must be reported as kept manifests.
			if keptManifests != len(reps[0].Delete.Manifests) {
				t.Errorf("regsweep %s with the default 1h grace: %d manifest revisions reported as kept by grace, want the %d that --grace 0 deletes (%v)",
					name, keptManifests, len(reps[0].Delete.Manifests), reps[0].manifestSet())
			}

			if !untagged {
				// Default mode: the same blobs as 2.8.2, and no manifests from either.
				if !sameSet(ours, dist.blobs) {
					t.Errorf("default mode: regsweep and 2.8.2 disagree: only regsweep %s, only 2.8.2 %s",
						s.w.names(setDiff(ours, dist.blobs)...), s.w.names(setDiff(dist.blobs, ours)...))
				}
				if len(dist.manifests) != 0 || len(reps[0].Delete.Manifests) != 0 {
					t.Errorf("default mode deletes no manifest revisions: 2.8.2 %v, regsweep %v", dist.manifests, reps[0].Delete.Manifests)
				}
				t.Logf("default mode: regsweep and 2.8.2 both delete %d blobs: %s", len(ours), s.w.nameSet(ours))
				return
			}

			// -m: the known differences. 2.8.2 marks a tagged manifest and its
			// References() only, and lists every manifest no tag in its repository
			// points at as eligible (its revision link goes, and its blobs are not
			// marked). So (1) the children of an index or manifest list lose their
			// revision links (breaking the multi-platform tag) and, unless a tagged
			// image references them, their configs and layers; (2) untagged OCI 1.1
			// referrers (SBOMs, signatures) of live images are deleted entirely.
			// regsweep keeps both live; everything else is the same.
			if extra := setDiff(ours, dist.blobs); len(extra) > 0 {
				t.Errorf("-m: regsweep deletes blobs 2.8.2 keeps: %s", s.w.names(extra...))
			}
			marked := map[digest.Digest]bool{} // what 2.8.2 marks: tagged manifests and their References()
			for _, m := range s.w.roots(true) {
				marked[m.digest] = true
				for _, r := range m.refs() {
					marked[r.digest] = true
				}
			}
			children := map[digest.Digest]bool{}
			childBlobs := map[digest.Digest]bool{} // the children's configs and layers 2.8.2 does not mark
			for _, idx := range []*manifest{s.multi, s.list} {
				for _, c := range idx.children {
					children[c.digest] = true
					for _, b := range append([]*blob{c.config}, c.layers...) {
						if !marked[b.digest] {
							childBlobs[b.digest] = true
						}
					}
				}
			}
			referrers := map[digest.Digest]bool{s.refB.digest: true} // untagged, subject live
			refBlobs := map[digest.Digest]bool{}
			s.refB.closure(func(b *blob) {
				if !marked[b.digest] && !childBlobs[b.digest] {
					refBlobs[b.digest] = true
				}
			})
			extra := map[digest.Digest]bool{}
			for _, d := range setDiff(dist.blobs, ours) {
				extra[d] = true
			}
			wantExtra := map[digest.Digest]bool{}
			for _, set := range []map[digest.Digest]bool{childBlobs, refBlobs} {
				for d := range set {
					wantExtra[d] = true
				}
			}
			if !sameSet(extra, wantExtra) {
				t.Errorf("-m: the blobs only 2.8.2 deletes should be exactly the index children's unmarked blobs and the live referrer's:\n only 2.8.2: %s\n children's:  %s\n referrer's:  %s",
					s.w.nameSet(extra), s.w.nameSet(childBlobs), s.w.nameSet(refBlobs))
			}
			// Spelled out: p-amd64 is still tagged in plat, so 2.8.2 keeps its blobs;
			// p-arm64 lost its plat tag, and both Docker list children were never
			// tagged. The empty config is shared with the referrer of the deleted D,
			// which both delete.
			wantNames := []string{"config p-arm64", "layer p-arm64-only", "config dl-amd64", "layer dl-amd64-only", "config dl-arm64", "layer dl-arm64-only",
				"referrer sbom-of-chain-b", "empty config", "artifact sbom-b"}
			var gotNames []string
			for d := range extra {
				gotNames = append(gotNames, s.w.blobs[d].name)
			}
			if !sameStrings(gotNames, wantNames) {
				t.Errorf("-m: only 2.8.2 deletes %v, want %v", gotNames, wantNames)
			}
			oursManifests := map[digest.Digest]bool{}
			for _, m := range reps[0].Delete.Manifests {
				oursManifests[m.Digest] = true
			}
			onlyDist := map[digest.Digest]bool{}
			for _, d := range setDiff(dist.manifests, oursManifests) {
				onlyDist[d] = true
			}
			wantManifests := map[digest.Digest]bool{}
			for _, set := range []map[digest.Digest]bool{children, referrers} {
				for d := range set {
					wantManifests[d] = true
				}
			}
			if !sameSet(onlyDist, wantManifests) || len(setDiff(oursManifests, dist.manifests)) > 0 {
				t.Errorf("-m: manifests only 2.8.2 deletes %s, want exactly the index children and the live referrer %s; only regsweep: %s",
					s.w.nameSet(onlyDist), s.w.nameSet(wantManifests), s.w.names(setDiff(oursManifests, dist.manifests)...))
			}
			t.Logf("-m: both delete %d blobs %s", len(ours), s.w.nameSet(ours))
			t.Logf("-m: 2.8.2 also deletes index children's blobs %s and the live referrer's %s, and the revision links of %s",
				s.w.nameSet(childBlobs), s.w.nameSet(refBlobs), s.w.nameSet(onlyDist))
		})
	}
	if after := blobFiles(t, root); fmt.Sprint(after) != fmt.Sprint(beforeBlobs) {
		t.Errorf("a dry run changed the blob store")
	}
	if after := links(t, root, "/"); !sameSet(after, beforeLinks) {
		t.Errorf("a dry run changed links: gone %v, new %v", setDiff(beforeLinks, after), setDiff(after, beforeLinks))
	}
}

// sweepAndPull runs a real regsweep gc on a fresh copy of the storage and checks the
// result on disk and through the registry.
func sweepAndPull(t *testing.T, s *scenario, untagged bool, workers string) {
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	cfg, _ := registryCfg(t, root)
	before := blobFiles(t, root)
	revsBefore := links(t, root, "/_manifests/revisions/")
	layersBefore := links(t, root, "/_layers/")
	tagsBefore := tagLinks(t, root)
	historyBefore := tagIndexLinks(t, root)

	args := []string{"gc", cfg, "--grace", "0", "--workers", workers}
	if untagged {
		args = append(args, "-m")
	}
	start := time.Now()
	rep, stderr := regsweep(t, args...)
	t.Logf("regsweep %s: %s", strings.Join(args[2:], " "), time.Since(start).Round(time.Millisecond))
	if rep.Result == nil {
		t.Fatalf("regsweep gc (no --dry-run) reported no result:\n%s", stderr)
	}
	after := blobFiles(t, root)
	gone := map[digest.Digest]bool{}
	var goneBytes int64
	for d, size := range before {
		if _, ok := after[d]; !ok {
			gone[d] = true
			goneBytes += size
		}
	}
	want := s.w.expectedGone(untagged)
	if !sameSet(gone, want) {
		t.Errorf("blobs gone from blobs/ differ from those only deleted manifests referenced: gone but live %s; still there %s",
			s.w.names(setDiff(gone, want)...), s.w.names(setDiff(want, gone)...))
	}
	if !sameSet(rep.blobSet(), gone) {
		t.Errorf("report lists deleted blobs %s, storage lost %s", s.w.nameSet(rep.blobSet()), s.w.nameSet(gone))
	}
	res := rep.Result
	if res.FreedBytes != goneBytes || res.DeletedBlobs != len(gone) {
		t.Errorf("result.freed_bytes %d for %d blobs; the filesystem lost %d bytes in %d blob data files", res.FreedBytes, res.DeletedBlobs, goneBytes, len(gone))
	}
	if res.AlreadyDone != 0 || res.Missing != 0 {
		t.Errorf("result: already_done %d, missing %d on a fresh sweep", res.AlreadyDone, res.Missing)
	}
	for d := range gone {
		if _, err := os.Stat(filepath.Join(v2(root), "blobs", "sha256", d.Encoded()[:2], d.Encoded())); !os.IsNotExist(err) {
			t.Errorf("blob directory of %s left behind (%v)", s.w.names(d), err)
		}
	}

	// Revision links: untouched in default mode; with -m exactly the reported ones go.
	revsAfter := links(t, root, "/_manifests/revisions/")
	gotRevs := map[string]bool{}
	for _, k := range setDiff(revsBefore, revsAfter) {
		gotRevs[k] = true
	}
	if !sameSet(gotRevs, rep.manifestSet()) || res.DeletedManifests != len(gotRevs) {
		t.Errorf("revision links deleted %v (result says %d), report lists %v", gotRevs, res.DeletedManifests, rep.manifestSet())
	}
	if untagged {
		wantRevs := map[string]bool{"team/app@" + s.appX1.digest.String(): true, "chain@" + s.refD.digest.String(): true}
		if !sameSet(gotRevs, wantRevs) {
			t.Errorf("-m deleted revision links %v, want only the overwritten team/app:v1 and the referrer of the deleted chain:d %v", gotRevs, wantRevs)
		}
	}
	// Layer links: exactly those of deleted blobs go, and none is left dangling.
	layersAfter := links(t, root, "/_layers/")
	gotLinks := map[string]bool{}
	for _, k := range setDiff(layersBefore, layersAfter) {
		gotLinks[k] = true
	}
	if !sameSet(gotLinks, rep.linkSet()) || res.DeletedLayerLinks != len(gotLinks) {
		t.Errorf("layer links deleted %v (result says %d), report lists %v", gotLinks, res.DeletedLayerLinks, rep.linkSet())
	}
	for l := range layersAfter {
		if _, ok := after[digest.Digest(l[strings.Index(l, "@")+1:])]; !ok {
			t.Errorf("layer link %s names a deleted blob", l)
		}
	}
	// Tag history: with -m the entries of the deleted revisions go (the overwritten
	// team/app:v1's X1, and chain:tmp's referrer of D), nothing else.
	wantHistory := map[string]bool{}
	if untagged {
		wantHistory = map[string]bool{"team/app:v1@" + s.appX1.digest.String(): true, "chain:tmp@" + s.refD.digest.String(): true}
	}
	gotHistory := map[string]bool{}
	for _, k := range setDiff(historyBefore, tagIndexLinks(t, root)) {
		gotHistory[k] = true
	}
	if !sameSet(gotHistory, wantHistory) || res.DeletedTagIndex != len(wantHistory) {
		t.Errorf("tag history entries deleted %v (result.deleted_tag_index %d), want %v", gotHistory, res.DeletedTagIndex, wantHistory)
	}
	if tagsAfter := tagLinks(t, root); fmt.Sprint(tagsAfter) != fmt.Sprint(tagsBefore) {
		t.Errorf("tags changed: %v -> %v", tagsBefore, tagsAfter)
	}

	// The registry serves every remaining tag and manifest; skopeo pulls each tag
	// (every platform of an index) and checks every digest.
	reg := startRegistry(t, root)
	sk := s.sk
	for repo, tags := range s.w.tags {
		for tag, m := range tags {
			flags := []string{"--src-tls-verify=false", "--preserve-digests"}
			if m.isIndex() {
				flags = append(flags, "--all")
			}
			dst := filepath.Join(t.TempDir(), "pull")
			dest := "dir:" + dst
			if m.oci {
				dest = "oci:" + dst + ":" + tag
			}
			if _, err := sk.copy(context.Background(), flags, "docker://"+reg.addr+"/"+repo+":"+tag, dest); err != nil {
				t.Errorf("pull %s:%s (%s) after the sweep: %v\nregistry log:\n%s", repo, tag, m.name, err, tail(reg.log.String(), 3000))
				continue
			}
			if got := pulledDigest(t, dst, m.oci); got != m.digest {
				t.Errorf("pull %s:%s: got manifest %s, pushed %s", repo, tag, got, m.digest)
			}
		}
	}
	// Every manifest that kept its revision link is served, and the untagged ones
	// (index children, referrers, with -m nothing else) pull by digest.
	byDigest := 0
	for k := range revsAfter {
		repo, d, _ := strings.Cut(k, "@")
		if code, got, _ := reg.headManifest(t, repo, d); code != 200 || got.String() != d {
			t.Errorf("HEAD %s after the sweep = %d %s", k, code, got)
		}
		m := s.w.manifests[digest.Digest(d)]
		if _, untaggedHere := s.w.untagged()[k]; !untaggedHere || m == nil {
			continue
		}
		byDigest++
		flags := []string{"--src-tls-verify=false", "--preserve-digests"}
		if m.isIndex() {
			flags = append(flags, "--all")
		}
		dst := filepath.Join(t.TempDir(), "pull")
		dest := "dir:" + dst
		if m.oci {
			dest = "oci:" + dst + ":x"
		}
		if _, err := sk.copy(context.Background(), flags, "docker://"+reg.addr+"/"+k, dest); err != nil {
			t.Errorf("pull untagged %s (%s) after the sweep: %v", k, m.name, err)
		}
	}
	code, _, _ := reg.headManifest(t, "team/app", s.appX1.digest.String())
	if untagged && code != 404 || !untagged && code != 200 {
		t.Errorf("HEAD team/app@%s (untagged) after the sweep = %d", s.appX1.digest, code)
	}
	reg.stop(t)

	// After the sweep 2.8.2's own GC finds nothing more to collect (and can read the
	// storage), and regsweep plans nothing more.
	if dist := distGC(t, cfg, "--dry-run"); len(dist.blobs) != 0 {
		t.Errorf("after the sweep, 2.8.2 garbage-collect --dry-run still finds %s", s.w.nameSet(dist.blobs))
	}
	again, _ := regsweep(t, append(append([]string{}, args...), "-d")...)
	if n := again.Summary; n.DeleteBlobs != 0 || n.DeleteManifests != 0 || n.DeleteLayerLinks != 0 || len(again.Warnings) != 0 {
		t.Errorf("a second dry run after the sweep still plans: %+v, warnings %+v", n, again.Warnings)
	}
	mode := "default"
	if untagged {
		mode = "-m"
	}
	if t.Failed() {
		return
	}
	t.Logf("%s: swept %d blobs, %d bytes (result.freed_bytes %d), %d revision links, %d layer links; every one of %d tags and %d untagged manifests pulls",
		mode, len(gone), goneBytes, res.FreedBytes, len(gotRevs), len(gotLinks), len(tagsBefore), byDigest)
}

// distBreaksIndexes runs the real 2.8.2 garbage-collect -m on a copy and shows the
// difference matters: the multi-platform tags no longer pull.
func distBreaksIndexes(t *testing.T, s *scenario) {
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	cfg, _ := registryCfg(t, root)
	before := blobFiles(t, root)
	distGC(t, cfg, "--delete-untagged")
	after := blobFiles(t, root)
	gone := map[digest.Digest]bool{}
	for d := range before {
		if _, ok := after[d]; !ok {
			gone[d] = true
		}
	}
	want, _ := s.w.dist282(true)
	if !sameSet(gone, want) {
		t.Errorf("2.8.2 -m deleted %s, its dry run predicted %s", s.w.nameSet(gone), s.w.nameSet(want))
	}
	reg := startRegistry(t, root)
	for _, c := range []struct {
		ref   string
		index bool
		oci   bool
		ok    bool
	}{{"multi:latest", true, true, false}, {"legacy/list:latest", true, false, false}, {"plat:amd64", false, true, true}, {"chain:b", false, true, true}} {
		flags := []string{"--src-tls-verify=false", "--preserve-digests"}
		if c.index {
			flags = append(flags, "--all")
		}
		dst := filepath.Join(t.TempDir(), "pull")
		dest := "dir:" + dst
		if c.oci {
			dest = "oci:" + dst + ":x"
		}
		_, err := s.sk.copy(context.Background(), flags, "docker://"+reg.addr+"/"+c.ref, dest)
		switch {
		case c.ok && err != nil:
			t.Errorf("after 2.8.2 -m, %s should still pull: %v", c.ref, err)
		case !c.ok && err == nil:
			t.Errorf("after 2.8.2 -m, %s pulled; the known 2.8.2 difference (children of indexes deleted) did not show", c.ref)
		case !c.ok:
			t.Logf("after 2.8.2 -m, %s is broken, as expected: %s", c.ref, lastLine(err.Error()))
		}
	}
	reg.stop(t)
}

// pulledDigest is the digest of the top-level manifest skopeo wrote to dst.
func pulledDigest(t *testing.T, dst string, oci bool) digest.Digest {
	t.Helper()
	if !oci {
		b, err := os.ReadFile(filepath.Join(dst, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		return digest.FromBytes(b)
	}
	b, err := os.ReadFile(filepath.Join(dst, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.Index
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("pulled layout index.json: %v %s", err, b)
	}
	return idx.Manifests[0].Digest
}

func sameStrings(a, b []string) bool {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	n := map[string]bool{}
	for _, x := range b {
		n[x] = true
	}
	return len(a) == len(b) && sameSet(m, n)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
