package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/sweep"
)

// buildsConfig copies testdata/builds (the CI registry of the demo), ages it by two
// days, sets every tag's push time from pushed.tsv, as make demo does, and returns a
// config for it.
func buildsConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	if err := os.CopyFS(root, os.DirFS("../../testdata/builds/registry")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../testdata/builds/pushed.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		hours, err := strconv.Atoi(fields[2])
		if err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-time.Duration(hours) * time.Hour)
		link := filepath.Join(root, "docker/registry/v2/repositories", fields[0], "_manifests/tags", fields[1], "current/link")
		if err := os.Chtimes(link, when, when); err != nil {
			t.Fatal(err)
		}
	}
	return writeConfig(t, root)
}

const buildsPolicy = "../../testdata/builds/policy.yaml"

// policyReport is the part of the report the policy tests read.
type policyReport struct {
	Summary gc.Summary `json:"summary"`
	Delete  struct {
		Tags  []gc.TagItem  `json:"tags"`
		Blobs []gc.BlobItem `json:"blobs"`
	} `json:"delete"`
	Retention *gc.Retention    `json:"retention"`
	Result    *sweep.Result    `json:"result"`
	Window    *analysis.Window `json:"window"`
	Dropped   []string         `json:"dropped"`
	Kept      []gc.KeptItem    `json:"kept"`
}

func decodePolicy(t *testing.T, out string) policyReport {
	t.Helper()
	var r policyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

func tagRefs(items []gc.TagItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Repository+":"+it.Tag)
	}
	slices.Sort(out)
	return out
}

// blobBytes sums the sizes of the blob data files under root.
func blobBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(filepath.Join(root, "docker/registry/v2/blobs"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() && fi.Name() == "data" {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The policy on the builds registry: the dry run names the tags the policy
// does not keep (worked out by hand below), the bytes untagging frees are what the
// plan deletes beyond the same plan without tag deletions, and the real run frees
// exactly that on disk.
func TestPolicyGC(t *testing.T) {
	cfg := buildsConfig(t)
	out := mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", t.TempDir())
	rep := decodePolicy(t, out)
	// team/app/api: builds older than 30 days (101-106) match no entry but pushedWithin;
	// of the x.y.z releases the 5 most recent stay (v1.2.0-v1.6.0), and semverCount keeps
	// v2.0.0-rc.1, v1.6.0, v1.5.0: v1.0.0 and v1.1.0 go. latest and stable stay.
	// team/web: main, dev-abc, pr-18 were pushed within 30 days. library/alpine: latest
	// and edge stay; 3.18-3.20 go (3.20's image stays: latest names it). other/tools:
	// no policy.
	want := []string{
		"library/alpine:3.18", "library/alpine:3.19", "library/alpine:3.20",
		"team/app/api:build-101", "team/app/api:build-102", "team/app/api:build-103", "team/app/api:build-104",
		"team/app/api:build-105", "team/app/api:build-106", "team/app/api:v1.0.0", "team/app/api:v1.1.0",
		"team/web:dev-def", "team/web:feature-x", "team/web:pr-17",
	}
	if got := tagRefs(rep.Delete.Tags); !slices.Equal(got, want) {
		t.Fatalf("tags deleted:\n got %v\nwant %v", got, want)
	}
	if rep.Summary.DeleteTags != len(want) {
		t.Errorf("summary.delete_tags %d", rep.Summary.DeleteTags)
	}
	// Untagging frees what the plan deletes beyond a plan that keeps every tag (the
	// same policy without keepTags: untagged manifests still go).
	keepAll := filepath.Join(t.TempDir(), "keep-all.yaml")
	if err := os.WriteFile(keepAll, []byte("policies:\n  - repositories: [\"team/**\", \"library/*\"]\n    deleteUntagged: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", keepAll, "-d", "-q", "-o", "json", "--index", t.TempDir()))
	if len(base.Delete.Tags) != 0 {
		t.Fatalf("a policy without keepTags deletes tags: %v", tagRefs(base.Delete.Tags))
	}
	ret := rep.Retention
	if ret == nil || ret.FreedBytes == 0 {
		t.Fatalf("retention %+v", ret)
	}
	if d := rep.Summary.DeleteBytes - base.Summary.DeleteBytes; ret.FreedBytes != d {
		t.Errorf("retention frees %d bytes, the plans differ by %d", ret.FreedBytes, d)
	}
	var sum int64
	for _, r := range ret.Repositories {
		sum += r.FreedBytes
	}
	if len(ret.Policies) != 1 || ret.Policies[0].FreedBytes != ret.FreedBytes || sum != ret.FreedBytes {
		t.Errorf("per policy %+v, per repository sum %d, total %d (no blob is shared between the repositories' removed images here)", ret.Policies, sum, ret.FreedBytes)
	}

	// The real run frees on disk what the dry run said.
	disk := regRoot(t, cfg)
	before := blobBytes(t, disk)
	real := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-q", "-o", "json", "--index", t.TempDir()))
	if real.Result == nil || real.Result.DeletedTags != len(want) {
		t.Fatalf("result %+v", real.Result)
	}
	if delta := before - blobBytes(t, disk); delta != real.Result.FreedBytes || delta != rep.Summary.DeleteBytes {
		t.Errorf("disk freed %d bytes; result says %d, dry run %d", delta, real.Result.FreedBytes, rep.Summary.DeleteBytes)
	}
	for _, ref := range want {
		repo, tag, _ := strings.Cut(ref, ":")
		if _, err := os.Stat(filepath.Join(disk, "docker/registry/v2/repositories", repo, "_manifests/tags", tag)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("tag directory of %s: %v", ref, err)
		}
	}
	// Nothing is left to do.
	again := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", t.TempDir()))
	if s := again.Summary; s.DeleteTags+s.DeleteBlobs+s.DeleteManifests+s.DeleteLayerLinks != 0 {
		t.Errorf("after the run the policy still deletes: %+v", s)
	}
}

// regRoot reads the root directory back from a test config.
func regRoot(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "rootdirectory: ")
	if !ok {
		t.Fatalf("no root in %s", b)
	}
	return strings.TrimSpace(after)
}

// A mistake in the policy file is a usage error naming its line, before the storage
// is looked at: here there is none.
func TestPolicyFileErrors(t *testing.T) {
	cfg := writeConfig(t, filepath.Join(t.TempDir(), "no-such-storage"))
	for _, tc := range []struct{ src, want string }{
		{"policies:\n  - repositories: [\"**\"]\n    keepTag:\n      - patterns: [x]\n", "line 3: field keepTag not found"},
		{"policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - patterns: [\"(\"]\n", ":4: policies[0].keepTags[0]: pattern"},
		{"policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - pushedWithin: 1 month\n", "line 4: pushedWithin"},
	} {
		pol := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(pol, []byte(tc.src), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"gc", cfg, "--policy", pol, "-d"}, {"gc", cfg, "--policy", pol}, {"report", "--index", t.TempDir(), "--policy", pol}} {
			_, err := run(t, args...)
			if exitCode(err) != exitUsage || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), pol) {
				t.Errorf("%v: exit %d, err %v; want 2 naming %s and %q", args[:1], exitCode(err), err, pol, tc.want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "no-such-storage")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the storage root was created: %v", err)
	}
	_, err := run(t, "gc", cfg, "--policy", filepath.Join(t.TempDir(), "missing.yaml"), "-d")
	if exitCode(err) != exitUsage || !strings.Contains(fmtErr(err), "missing.yaml") {
		t.Errorf("missing policy file: exit %d, %v", exitCode(err), err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// apply decides again with the plan's policy: a tag pushed since the plan stays.
func TestPolicyPlanAndApply(t *testing.T) {
	cfg := buildsConfig(t)
	plan := filepath.Join(t.TempDir(), "plan.json")
	mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "--plan-out", plan, "--index", t.TempDir())
	// pr-17 is pushed again: its link is rewritten now.
	link := filepath.Join(regRoot(t, cfg), "docker/registry/v2/repositories/team/web/_manifests/tags/pr-17/current/link")
	b, err := os.ReadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(link, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Now within grace (and the most recent of its repository): apply keeps it, and
	// deletes the 13 others.
	rep := decodePolicy(t, mustRun(t, "apply", cfg, plan, "-q", "-o", "json", "--index", t.TempDir()))
	if rep.Result == nil || rep.Result.DeletedTags != 13 {
		t.Fatalf("apply deleted %+v, want 13 of the 14 planned tags", rep.Result)
	}
	if !slices.ContainsFunc(rep.Dropped, func(p string) bool { return strings.HasSuffix(p, "/team/web/_manifests/tags/pr-17") }) {
		t.Errorf("dropped %v, want pr-17's tag", rep.Dropped)
	}
	if _, err := os.Stat(link); err != nil {
		t.Errorf("pr-17 pushed again was deleted: %v", err)
	}
}

// A run stopped by --max-duration exits 5 with what is left; the next run finishes;
// together they leave the storage as one uninterrupted run does.
func TestWindowStopsAndContinues(t *testing.T) {
	one, two := buildsConfig(t), buildsConfig(t)
	mustRun(t, "gc", one, "--policy", buildsPolicy, "-q", "--index", t.TempDir())

	idx := t.TempDir()
	var n atomic.Int32 // the hook runs on the sweep's workers
	testBeforeDelete = func(string) error {
		if n.Add(1) > 5 {
			time.Sleep(300 * time.Millisecond) // the window ends a few deletes in
		}
		return nil
	}
	out, err := run(t, "gc", two, "--policy", buildsPolicy, "-q", "-o", "json", "--index", idx, "--max-duration", "2s")
	testBeforeDelete = nil
	if exitCode(err) != exitWindow {
		t.Fatalf("exit %d (%v), want %d", exitCode(err), err, exitWindow)
	}
	if !strings.Contains(err.Error(), "run again to continue") {
		t.Errorf("error %q does not say to run again", err)
	}
	rep := decodePolicy(t, out)
	if rep.Window == nil || !rep.Window.Stopped || rep.Result == nil || rep.Result.Remaining == nil || rep.Result.Remaining.Items() == 0 {
		t.Fatalf("report window %+v, result %+v: want stopped with work left", rep.Window, rep.Result)
	}
	done := rep.Result.DeletedTags + rep.Result.DeletedManifests + rep.Result.DeletedTagIndex + rep.Result.DeletedBlobs + rep.Result.DeletedLayerLinks
	if done == 0 || done+rep.Result.Remaining.Items() != rep.Window.Items {
		t.Errorf("deleted %d, left %d, of %d planned", done, rep.Result.Remaining.Items(), rep.Window.Items)
	}
	mustRun(t, "gc", two, "--policy", buildsPolicy, "-q", "--index", idx, "--max-duration", "1h")
	if d := cmp.Diff(files(t, regRoot(t, one)), files(t, regRoot(t, two))); d != "" {
		t.Errorf("stopped and continued differs from one run (-one +two):\n%s", d)
	}
}

// files lists the regular files under root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The estimate: from the rate the last sweep measured, whether the plan fits.
func TestWindowEstimate(t *testing.T) {
	cfg := buildsConfig(t)
	idx := t.TempDir()
	// No sweep yet: no estimate, and it says so.
	rep := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", idx, "--max-duration", "1h"))
	if rep.Window == nil || rep.Window.Fits != nil || rep.Window.Items == 0 {
		t.Fatalf("window %+v, want no estimate", rep.Window)
	}
	for _, tc := range []struct {
		rate float64
		fits bool
	}{{0.5, false}, {1e6, true}} {
		b, _ := json.Marshal(map[string]any{"deletes_per_second": tc.rate, "deletes": 1000, "workers": 16, "measured": time.Now()})
		if err := os.WriteFile(filepath.Join(idx, "sweep-rate.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", idx, "--max-duration", "1m"))
		w := rep.Window
		if w == nil || w.Fits == nil || *w.Fits != tc.fits || w.DeletesPerSecond != tc.rate {
			t.Errorf("rate %v: window %+v, want fits=%v", tc.rate, w, tc.fits)
		}
	}
	// --max-ops caps the rate the estimate assumes.
	rep = decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", idx, "--max-duration", "1m", "--max-ops", "1"))
	if w := rep.Window; w == nil || w.Fits == nil || *w.Fits || w.DeletesPerSecond != 1 {
		t.Errorf("with --max-ops 1: window %+v, want 1/s and not fitting", w)
	}
	// A real sweep records what it measured.
	os.Remove(filepath.Join(idx, "sweep-rate.json"))
	mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-q", "--index", idx)
	var rec rateRecord
	b, err := os.ReadFile(filepath.Join(idx, "sweep-rate.json"))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.DeletesPerSecond <= 0 || rec.Deletes < 50 {
		t.Errorf("rate record %s (%v)", b, err)
	}
}

func TestWindowFlags(t *testing.T) {
	cfg := buildsConfig(t)
	for _, args := range [][]string{
		{"--until", "25:00"}, {"--until", "tomorrow"}, {"--until", "2020-01-01T00:00:00Z"}, {"--max-duration", "-1m"},
	} {
		_, err := run(t, append([]string{"gc", cfg, "-q", "--index", t.TempDir()}, args...)...)
		if exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
	start := time.Date(2026, 11, 30, 23, 30, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"02:00":                     time.Date(2026, 12, 1, 2, 0, 0, 0, time.Local),
		"23:45":                     time.Date(2026, 11, 30, 23, 45, 0, 0, time.Local),
		"23:30":                     time.Date(2026, 12, 1, 23, 30, 0, 0, time.Local),
		"2026-12-01T06:00:00+01:00": time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC),
	} {
		got, err := parseUntil(in, start)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	w := windowFlags{until: "02:00", maxDuration: time.Hour}
	if end, _ := w.deadline(start); !end.Equal(start.Add(time.Hour)) {
		t.Errorf("the earlier of --until and --max-duration: %v", end)
	}
}

// report --policy answers from the index what gc --dry-run --policy says, in JSON,
// CSV and text.
func TestReportPolicy(t *testing.T) {
	cfg := buildsConfig(t)
	gcRep := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", t.TempDir()))
	dir := scanned(t, cfg)
	rep := decodePolicy(t, mustRun(t, "report", "--index", dir, "--policy", buildsPolicy, "-o", "json"))
	if d := cmp.Diff(gcRep.Retention, rep.Retention); d != "" {
		t.Errorf("report's retention differs from gc's (-gc +report):\n%s", d)
	}
	if !slices.Equal(tagRefs(gcRep.Delete.Tags), tagRefs(rep.Delete.Tags)) {
		t.Errorf("report deletes tags %v, gc %v", tagRefs(rep.Delete.Tags), tagRefs(gcRep.Delete.Tags))
	}
	rows, err := csv.NewReader(strings.NewReader(mustRun(t, "report", "--index", dir, "--policy", buildsPolicy, "-o", "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byRepo := map[string]gc.RepoRetention{}
	for _, r := range rep.Retention.Repositories {
		byRepo[r.Name] = r
	}
	for _, row := range rows[1:] {
		r, ok := byRepo[row[0]]
		want := []string{"", "", ""}
		if ok {
			want = []string{r.Policy, strconv.Itoa(r.DeleteTags), strconv.FormatInt(r.FreedBytes, 10)}
		}
		if got := row[9:12]; !slices.Equal(got, want) {
			t.Errorf("%s: policy columns %v, want %v", row[0], got, want)
		}
	}
	text := mustRun(t, "report", "--index", dir, "--policy", buildsPolicy)
	for _, want := range []string{"Retention policy " + buildsPolicy + ": would delete 14 tags", "team/app/api:build-101", "retention policy " + buildsPolicy} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
	page := mustRun(t, "report", "--index", dir, "--policy", buildsPolicy, "-o", "html", "--dot", "")
	d := parseDOM(t, []byte(page))
	rowsOf := func(id string) int {
		return len(all(d.byID(t, id), func(n *html.Node) bool { return n.Data == "tr" })) - 1
	}
	if got := rowsOf("retention-tags"); got != 14 {
		t.Errorf("HTML lists %d tags, want 14", got)
	}
	if got := rowsOf("retention-repos"); got != len(rep.Retention.Repositories) {
		t.Errorf("HTML lists %d repositories, want %d", got, len(rep.Retention.Repositories))
	}
	d.shown(t, "retention-freed-bytes", strconv.FormatInt(rep.Retention.FreedBytes, 10), ib(rep.Retention.FreedBytes))
}

// The report contract's retention and window fields (docs/design.md).
func TestPolicyReportContract(t *testing.T) {
	cfg := buildsConfig(t)
	var r map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", t.TempDir(), "--max-duration", "1h")), &r); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, "report", r, "retention", "window")
	hasKeys(t, "summary", r["summary"], "delete_tags")
	hasKeys(t, "mode", r["mode"], "policy")
	tags := r["delete"].(map[string]any)["tags"].([]any)
	hasKeys(t, "delete.tags[]", tags[0], "repository", "tag", "digest", "pushed_at", "policy", "reason", "path")
	ret := r["retention"].(map[string]any)
	hasKeys(t, "retention", ret, "file", "freed_blobs", "freed_bytes", "freed_manifests", "policies", "repositories")
	counts := []string{"tags", "delete_tags", "kept_by_safety", "freed_blobs", "freed_bytes", "freed_manifests"}
	hasKeys(t, "retention.policies[]", ret["policies"].([]any)[0], append([]string{"policy", "index", "delete_untagged", "repositories"}, counts...)...)
	hasKeys(t, "retention.repositories[]", ret["repositories"].([]any)[0], append([]string{"name", "policy"}, counts...)...)
	hasKeys(t, "window", r["window"], "until", "items", "stopped")

	idx := t.TempDir()
	testBeforeDelete = func(string) error { time.Sleep(200 * time.Millisecond); return nil }
	prom := filepath.Join(t.TempDir(), "regsweep.prom")
	out, _ := run(t, "gc", cfg, "--policy", buildsPolicy, "-q", "-o", "json", "--index", idx, "--max-duration", "1s", "--metrics-file", prom)
	testBeforeDelete = nil
	// A stopped run's metrics say so, with what is left, and carry no success time.
	m, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"regsweep_window_stopped 1\n", "regsweep_window_remaining_items ", `regsweep_last_sweep_deleted{kind="tags"} `,
		`regsweep_retention_freed_bytes{policy="policies[0] (team/**, library/*)"} `, `regsweep_retention_tags{policy="policies[0] (team/**, library/*)",decision="delete"} 14`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if strings.Contains(string(m), "regsweep_last_success_timestamp_seconds") {
		t.Errorf("a stopped run wrote a success time")
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, "result", r["result"], "deleted_tags", "kept_tags", "seconds", "deletes_per_second", "stopped_at", "remaining")
	hasKeys(t, "result.remaining", r["result"].(map[string]any)["remaining"], "tags", "tag_index", "manifests", "blobs", "bytes", "layer_links", "uploads")
}

// A window that ends during the scan stops the scan there: nothing is deleted.
func TestWindowEndsDuringScan(t *testing.T) {
	cfg := buildsConfig(t)
	before := files(t, regRoot(t, cfg))
	_, err := run(t, "gc", cfg, "--policy", buildsPolicy, "-q", "--index", t.TempDir(), "--max-duration", "1ns")
	if exitCode(err) != exitWindow || !strings.Contains(err.Error(), "during the scan; nothing was deleted") {
		t.Fatalf("exit %d, %v; want 5, the scan stopped", exitCode(err), err)
	}
	if d := cmp.Diff(before, files(t, regRoot(t, cfg))); d != "" {
		t.Errorf("the storage changed:\n%s", d)
	}
}

// An index built without tag times (gc without --policy), reused by a dry run with
// one: the policy deletes no tag and says why.
func TestPolicyOnIndexWithoutTagTimes(t *testing.T) {
	cfg := buildsConfig(t)
	idx := t.TempDir()
	mustRun(t, "gc", cfg, "-d", "-q", "--index", idx)
	var r struct {
		policyReport
		Warnings []struct{ Kind, Detail string } `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", idx, "--max-index-age", "1h")), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Delete.Tags) != 0 {
		t.Errorf("tags without push times deleted: %v", tagRefs(r.Delete.Tags))
	}
	if !slices.ContainsFunc(r.Warnings, func(w struct{ Kind, Detail string }) bool {
		return w.Kind == "unknown_push_time" && strings.Contains(w.Detail, "33 tags")
	}) {
		t.Errorf("warnings %+v: want unknown_push_time for the 33 tags the policy applies to", r.Warnings)
	}
	// A rescan decides them.
	if got := decodePolicy(t, mustRun(t, "gc", cfg, "--policy", buildsPolicy, "-d", "-q", "-o", "json", "--index", idx)); len(got.Delete.Tags) != 14 {
		t.Errorf("after a rescan: %d tags deleted, want 14", len(got.Delete.Tags))
	}
}
