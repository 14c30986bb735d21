package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.WarnLevel)
	ptest.Main(m) // flags, beam.Init, the prism runner in process
}

// mode is one way of planning, as regsweep gc's flags and regsweep-beam's say it.
type mode struct {
	name          string
	untagged      bool
	keepReferrers bool
	uploadAge     time.Duration
	grace         time.Duration // 0 in modes: the differential registries were just written
}

var modes = []mode{
	{"default", false, true, 168 * time.Hour, 0},
	{"delete-untagged", true, true, 168 * time.Hour, 0},
	{"delete-untagged,drop-referrers", true, false, 168 * time.Hour, 0},
	{"upload-age=1m", false, true, time.Minute, 0},
}

// gcPlan is regsweep gc -d's plan of the filesystem registry at root.
func gcPlan(t *testing.T, root string, now time.Time, m mode) *gc.Plan {
	t.Helper()
	p, err := gcPlanErr(t, root, now, m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func gcPlanErr(t *testing.T, root string, now time.Time, m mode) (*gc.Plan, error) {
	t.Helper()
	return gcPlanOn(t, storage.NewFilesystem(root), now, m)
}

// gcPlanOn is regsweep gc -d's plan of the storage drv reaches.
func gcPlanOn(t *testing.T, drv driver.StorageDriver, now time.Time, m mode) (*gc.Plan, error) {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	return gc.NewPlan(ctx, idx, gc.WithGracePeriod(m.grace), gc.WithNow(now), gc.WithUploadAge(m.uploadAge),
		gc.WithDeleteUntagged(m.untagged), gc.WithKeepReferrers(m.keepReferrers))
}

func fsConfig(root string) string {
	return "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + root + "\n"
}

// beamPlan runs the pipeline on prism and assembles its plan.
func beamPlan(t *testing.T, config string, now time.Time, m mode, rounds int) (*gc.Plan, error) {
	t.Helper()
	o := Options{Config: config, ConfigName: "config.yml", Untagged: m.untagged, KeepReferrers: m.keepReferrers,
		Cutoff: now.Add(-m.grace).UnixNano(), UploadCutoff: now.Add(-m.uploadAge).UnixNano(), Workers: 4, Rounds: rounds, ReadRounds: 4}
	return beamPlanWith(t, o, now, m)
}

func beamPlanWith(t *testing.T, o Options, now time.Time, m mode) (*gc.Plan, error) {
	t.Helper()
	recs := filepath.Join(t.TempDir(), "records")
	p, s := beam.NewPipelineWithRoot()
	textio.Write(s, recs, Build(s, o))
	if err := ptest.Run(p); err != nil {
		return nil, err
	}
	return assemble(context.Background(), recs, o, now, m.grace, m.uploadAge, false)
}

// samePlan compares what two plans delete, item for item, and whether both refuse.
func samePlan(t *testing.T, name string, want, got *gc.Plan) {
	t.Helper()
	lists := func(p *gc.Plan) map[string][]string {
		out := map[string][]string{}
		add := func(kind string, v any) { out[kind] = append(out[kind], mustJSON(v)) }
		for _, b := range p.Blobs {
			add("blob", map[string]any{"digest": b.Digest(), "size": b.Size()})
		}
		for _, v := range p.Manifests {
			add("manifest", v)
		}
		for _, v := range p.LayerLinks {
			add("layer link", v)
		}
		for _, v := range p.Uploads {
			v.StartedAt = v.StartedAt.UTC()
			add("upload", v)
		}
		for k := range out {
			slices.Sort(out[k])
		}
		return out
	}
	w, g := lists(want), lists(got)
	for _, kind := range []string{"blob", "manifest", "layer link", "upload"} {
		for _, x := range w[kind] {
			if !slices.Contains(g[kind], x) {
				t.Errorf("%s: gc deletes %s %s, the pipeline does not", name, kind, x)
			}
		}
		for _, x := range g[kind] {
			if !slices.Contains(w[kind], x) {
				t.Errorf("%s: the pipeline deletes %s %s, gc does not", name, kind, x)
			}
		}
	}
	if (len(want.Blocked) > 0) != (len(got.Blocked) > 0) {
		t.Errorf("%s: gc blocked by %d, the pipeline by %d", name, len(want.Blocked), len(got.Blocked))
	}
	if want.Summary.DeleteBytes != got.Summary.DeleteBytes {
		t.Errorf("%s: gc frees %d bytes, the pipeline %d", name, want.Summary.DeleteBytes, got.Summary.DeleteBytes)
	}
	sameReport(t, name, want, got)
}

// sameReport compares what two plans keep and why, their summaries and their
// lines per repository.
func sameReport(t *testing.T, name string, want, got *gc.Plan) {
	t.Helper()
	kept := func(p *gc.Plan) []string {
		var out []string
		for _, k := range p.Kept {
			out = append(out, mustJSON(k))
		}
		slices.Sort(out)
		return out
	}
	w, g := kept(want), kept(got)
	for _, x := range w {
		if !slices.Contains(g, x) {
			t.Errorf("%s: gc keeps %s, the pipeline does not say so", name, x)
		}
	}
	for _, x := range g {
		if !slices.Contains(w, x) {
			t.Errorf("%s: the pipeline keeps %s, gc does not say so", name, x)
		}
	}
	if want.Summary != got.Summary {
		t.Errorf("%s: summaries differ:\ngc       %+v\npipeline %+v", name, want.Summary, got.Summary)
	}
	warnings := func(ws []graph.Warning) []string {
		var out []string
		for _, w := range ws {
			if w.Kind == "missing_blob" {
				w.Detail = "" // names one of the manifests referencing it: gc the last its walk met
			}
			out = append(out, mustJSON(w))
		}
		slices.Sort(out)
		return out
	}
	for _, l := range []struct {
		what      string
		want, got []graph.Warning
	}{{"warns", want.Warnings, got.Warnings}, {"is blocked by", want.Blocked, got.Blocked}} {
		w, g := warnings(l.want), warnings(l.got)
		if !slices.Equal(w, g) {
			t.Errorf("%s: gc %s:\n%s\nthe pipeline:\n%s", name, l.what, strings.Join(w, "\n"), strings.Join(g, "\n"))
		}
	}
	if !slices.Equal(want.Repositories, got.Repositories) {
		t.Errorf("%s: lines per repository differ:\ngc       %+v\npipeline %+v", name, want.Repositories, got.Repositories)
	}
}

// On the differential registries (indexes nested, referrers, copies across
// repositories, retags, untags, API deletes, uploads, abandoned layers, repositories
// pushed to by digest only and holding only layers), in every mode, the pipeline's
// plan is regsweep gc's, item for item.
func TestPlanEqualsGC(t *testing.T) {
	seeds := 50 // as many as the MarkAndSweep differential suite (gc/difftest)
	switch {
	case testing.Short():
		seeds = 2
	case raceDetector:
		seeds = 10 // the same code for every seed; make test runs all 50 without it
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			_, ns, err := synth.NewFilesystem(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			cfg := synth.Small()
			cfg.UntaggedRepos, cfg.OrphanRepos = int(seed%2), int(seed%3)
			if _, err := synth.Populate(ctx, ns, seed, cfg); err != nil {
				t.Fatal(err)
			}
			deletes := 0
			for _, want := range equalInEveryMode(t, root) {
				deletes += len(want.Blobs) + len(want.Manifests) + len(want.LayerLinks) + len(want.Uploads)
			}
			if deletes == 0 {
				t.Error("no mode deletes anything: the registry exercises nothing")
			}
		})
	}
}

// On the storage Debian's docker-registry wrote in the e2e test (real pushes with
// skopeo, deletes through the API), saved there with REGSWEEP_E2E_SAVE and named
// here with REGSWEEP_E2E_STORAGE (make e2e does both): equal plans in every mode.
func TestPlanEqualsGCOnE2EStorage(t *testing.T) {
	saved := os.Getenv("REGSWEEP_E2E_STORAGE")
	if saved == "" {
		t.Skip("REGSWEEP_E2E_STORAGE is not set (make e2e sets it)")
	}
	root := t.TempDir()
	regtest.CopyTree(t, saved, root)
	deletes := 0
	for _, want := range equalInEveryMode(t, root) {
		deletes += len(want.Blobs) + len(want.Manifests)
	}
	if deletes == 0 {
		t.Error("no mode deletes anything: the saved storage exercises nothing")
	}
}

// The sample registry (an index over two images, tags, an upload) with an
// abandoned layer in every repository (garbage, unless a fault keeps it) and one
// fault that keeps data: a corrupt tag link (under -m its repository is pinned), a
// symbolic link in a repository, an unreadable manifest (its repository's layer
// links keep their blobs), one not readable to its end (every blob stays), a
// missing manifest a tag names (a broken root: its repository's revisions are
// expanded), and a warning that blocks (a symbolic link for the blob store).
func TestPlanEqualsGCOnFaults(t *testing.T) {
	now := time.Now().Add(time.Hour)
	repos := []string{"library/debian", "team/app/api", "team/app/web"}
	for _, fault := range []string{"none", "corrupt tag link", "symlink in a repository", "unreadable manifest", "partial manifest", "missing manifest", "missing manifests, many", "blob store link", "live layer data missing", "dangling layer link", "tag without revision link", "untagged manifest missing", "symlink for a layer link", "symlink for _layers", "symlink for a blob", "symlink for a revision", "untagged manifest linked as a layer too"} {
		t.Run(fault, func(t *testing.T) {
			root := regtest.Sample(t)
			abandoned := map[string]digest.Digest{}
			for _, r := range repos {
				abandoned[r] = regtest.PutBlob(t, root, r, []byte("abandoned layer of "+r))
			}
			// replace makes the directory of s a symbolic link to an empty directory.
			replace := func(s storage.Spec) {
				dir := regtest.FSPath(root, regtest.Path(t, s))
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				regtest.Symlink(t, t.TempDir(), dir)
			}
			// An upload half an hour inside the default upload age.
			regtest.Write(t, root, storage.Spec{Kind: storage.UploadStartedAt, Repo: "team/app/web", Upload: "recent"},
				[]byte(now.Add(-168*time.Hour+30*time.Minute).UTC().Format(time.RFC3339)))
			switch fault {
			case "corrupt tag link":
				regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "latest"}, []byte("not a digest"))
			case "symlink in a repository":
				regtest.Symlink(t, t.TempDir(), regtest.FSPath(root, "docker/registry/v2/repositories/team/app/web/_layers/sha256/elsewhere"))
			case "unreadable manifest":
				regtest.PutManifest(t, root, "team/app/api", "broken", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`))
			case "partial manifest":
				// A directory where its data should be: it cannot be read at all, so
				// it might name anything.
				d := regtest.PutManifest(t, root, "team/app/api", "odd", []byte(`{"schemaVersion":2}`))
				data := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d}))
				if err := os.Remove(data); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(data, 0o755); err != nil {
					t.Fatal(err)
				}
			case "missing manifest", "missing manifests, many":
				d := regtest.PutManifest(t, root, "library/debian", "gone", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:`+strings.Repeat("a", 64)+`"},"layers":[]}`))
				if err := os.RemoveAll(filepath.Dir(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d})))); err != nil {
					t.Fatal(err)
				}
				if fault == "missing manifest" {
					// More healthy roots: 2 broken of 14 is more than a tenth, which
					// looks like a blob store not all there.
					tagged := regtest.ReadLink(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12"})
					for i := range 10 {
						regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: fmt.Sprint("v", i)}, []byte(tagged))
					}
				}
			case "live layer data missing":
				// A layer an image needs, its data gone: its links stay (deleting
				// them frees nothing and breaks the image for good).
				var idx struct {
					Manifests []struct{ Digest digest.Digest } `json:"manifests"`
				}
				regtest.ReadJSON(t, root, regtest.ReadLink(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "multi"}), &idx)
				var img struct {
					Layers []struct{ Digest digest.Digest } `json:"layers"`
				}
				regtest.ReadJSON(t, root, idx.Manifests[0].Digest, &img)
				if err := os.RemoveAll(filepath.Dir(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: img.Layers[0].Digest})))); err != nil {
					t.Fatal(err)
				}
			case "symlink for a layer link":
				// A layer link that cannot be read: kept, with its blob.
				replace(storage.Spec{Kind: storage.LayerDir, Repo: "team/app/web", Digest: abandoned["team/app/web"]})
			case "symlink for _layers":
				// The repository's layer links are unknown: everything in it stays.
				dir := regtest.FSPath(root, "docker/registry/v2/repositories/library/debian/_layers")
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				regtest.Symlink(t, t.TempDir(), dir)
			case "symlink for a blob":
				// The registry serves what it points at: kept, with the links naming it.
				replace(storage.Spec{Kind: storage.BlobDir, Digest: abandoned["team/app/api"]})
			case "symlink for a revision":
				// A revision link that cannot be read: a root, kept.
				d := regtest.PutManifest(t, root, "team/app/api", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"`+abandoned["team/app/api"].String()+`"},"layers":[]}`))
				replace(storage.Spec{Kind: storage.RevisionDir, Repo: "team/app/api", Digest: d})
			case "untagged manifest missing":
				// Under -m a root all the same (a broken one): what it was is unknown.
				d := regtest.PutManifest(t, root, "team/app/web", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:`+strings.Repeat("b", 64)+`"},"layers":[]}`))
				if err := os.RemoveAll(filepath.Dir(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d})))); err != nil {
					t.Fatal(err)
				}
			case "tag without revision link":
				// The registry cannot serve it, but a listing may have missed the
				// link: what it names stays.
				cfg := regtest.PutBlob(t, root, "", []byte(`{"os":"linux","note":"config of an image only a tag names"}`))
				d := regtest.PutBlob(t, root, "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+cfg.String()+`","size":1},"layers":[]}`))
				regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "unlinked"}, []byte(d))
			case "untagged manifest linked as a layer too":
				// Under -m it goes, and its repository links it twice: the bytes it
				// frees there count once.
				d := regtest.PutManifest(t, root, "team/app/web", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"`+abandoned["team/app/web"].String()+`"},"layers":[]}`))
				regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/web", Digest: d}, []byte(d))
			case "dangling layer link":
				regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "library/debian", Digest: digest.FromString("never pushed")}, []byte(digest.FromString("never pushed")))
			case "blob store link":
				regtest.Symlink(t, t.TempDir(), regtest.FSPath(root, "docker/registry/v2/blobs/sha256/zz"))
			}
			for _, m := range modes {
				want, werr := gcPlanErr(t, root, now, m)
				got, err := beamPlan(t, fsConfig(root), now, m, 16)
				switch {
				case werr != nil:
					// Refused alike: storage that looks incomplete.
					if !errors.Is(werr, gc.ErrIncompleteStorage) || !errors.Is(err, gc.ErrIncompleteStorage) {
						t.Fatalf("%s: gc: %v; the pipeline: %v", m.name, werr, err)
					}
				case err != nil:
					t.Fatalf("%s: %v", m.name, err)
				default:
					samePlan(t, m.name, want, got)
					if blocks[fault] && len(want.Blocked) == 0 {
						t.Errorf("%s: gc is not blocked: the fault exercises nothing", m.name)
					}
				}
				if (fault == "missing manifests, many") != (werr != nil) {
					t.Errorf("%s: gc refused the storage as incomplete: %v", m.name, werr)
				}
			}
		})
	}
}

// blocks are the faults that block a sweep (a root reaches what cannot be read).
var blocks = map[string]bool{"untagged manifest missing": true, "unreadable manifest": true, "partial manifest": true, "missing manifest": true, "blob store link": true}

// A chain of references longer than the unrolled rounds fails the job, closed,
// with the flag to raise; no plan is made.
func TestPlanDeeperThanRoundsFails(t *testing.T) {
	skipFailingJobsUnderRace(t)
	root := regtest.Sample(t) // tag -> index -> image -> config and layers: 3 rounds
	now := time.Now().Add(time.Hour)
	_, err := beamPlan(t, fsConfig(root), now, modes[1], 1)
	if err == nil || !strings.Contains(err.Error(), "--rounds") {
		t.Fatalf("one round on a registry with indexes: %v, want a failure naming --rounds", err)
	}
	if _, err := beamPlan(t, fsConfig(root), now, modes[1], 3); err != nil {
		t.Fatalf("three rounds: %v", err)
	}
	// An index whose child has no revision link: the child is read in the first
	// round of reads after the revision links'.
	cfg := regtest.PutBlob(t, root, "", []byte(`{"os":"linux"}`))
	child := regtest.PutBlob(t, root, "", fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":%q},"layers":[]}`, cfg))
	regtest.PutManifest(t, root, "library/debian", "nested", fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q}]}`, child))
	o := Options{Config: fsConfig(root), ConfigName: "config.yml", Untagged: true, KeepReferrers: true, Cutoff: now.UnixNano(), Workers: 4, Rounds: 16}
	if _, err := beamPlanWith(t, o, now, modes[1]); err == nil || !strings.Contains(err.Error(), "--read-rounds") {
		t.Fatalf("no round of index children read: %v, want a failure naming --read-rounds", err)
	}
	o.ReadRounds = 1
	if _, err := beamPlanWith(t, o, now, modes[1]); err != nil {
		t.Fatalf("one round of index children read: %v", err)
	}
}

// The plan file is one regsweep apply reads.
func TestPlanFileDecodes(t *testing.T) {
	root := regtest.Sample(t)
	now := time.Now().Add(time.Hour)
	p, err := beamPlan(t, fsConfig(root), now, modes[1], 16)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "plan.json")
	if err := writePlan(f, p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var back gc.Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(back.Storage, "filesystem rootdirectory=") || !back.Mode.DeleteUntagged || len(back.Blobs) != len(p.Blobs) || len(back.Blobs) == 0 {
		t.Errorf("read back: storage %q, mode %+v, %d blobs (wrote %d)", back.Storage, back.Mode, len(back.Blobs), len(p.Blobs))
	}
}

// skipFailingJobsUnderRace skips a test whose pipelines fail on purpose when the
// race detector is on: Beam's SDK harness (v2.77.0, harness.go) closes its response
// channel when the runner drops a failed job's worker while another bundle's
// goroutine may still send on it, which the detector reports (and which is not
// ours). make test runs these tests again without it.
func skipFailingJobsUnderRace(t *testing.T) {
	t.Helper()
	if raceDetector {
		t.Skip("fails pipelines on purpose: Beam's harness races at a failed job's shutdown; run without -race (make test does)")
	}
}

// equalInEveryMode checks the pipeline's plan of the filesystem registry at root
// against regsweep gc's in every mode, and returns gc's plans.
func equalInEveryMode(t *testing.T, root string) []*gc.Plan {
	t.Helper()
	now := time.Now().Add(time.Hour)
	var plans []*gc.Plan
	for _, m := range modes {
		want := gcPlan(t, root, now, m)
		got, err := beamPlan(t, fsConfig(root), now, m, 16)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		samePlan(t, m.name, want, got)
		plans = append(plans, want)
	}
	return plans
}
