package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
)

// synthConfig writes the small synthetic registry of seed, aged by two days, and a
// config.yml for it.
func synthConfig(t *testing.T, seed int64) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	_, ns, err := synth.NewFilesystem(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.Populate(context.Background(), ns, seed, synth.Small()); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	err = filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+root+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// reportCase is a registry to report on: the sample, then synthetic ones.
type reportCase struct {
	name string
	cfg  string
}

func reportCases(t *testing.T) []reportCase {
	cases := []reportCase{{"sample", sampleConfig(t)}}
	for seed := int64(1); seed <= 3; seed++ {
		cases = append(cases, reportCase{fmt.Sprintf("synth-%d", seed), synthConfig(t, seed)})
	}
	return cases
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("regsweep %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// scanned scans cfg into a new index directory and returns it.
func scanned(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "scan", cfg, "--index", dir, "-q")
	return dir
}

// reportJSON is the part of report's JSON the tests read.
type reportJSON struct {
	Summary      gc.Summary          `json:"summary"`
	Repositories []gc.RepoStats      `json:"repositories"`
	Mode         analysis.ReportMode `json:"mode"`
	Capacity     analysis.Capacity   `json:"capacity"`
	WhatIf       *analysis.WhatIf    `json:"what_if"`
	Warnings     []graph.Warning     `json:"warnings"`
}

func decodeReport(t *testing.T, out string) reportJSON {
	t.Helper()
	var r reportJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	return r
}

// TestReportMatchesGC: report, from an index that scan built, answers exactly what gc
// --dry-run says after its own scan (deferred stats, another index) of the same
// storage: the same summary, repositories and deletions.
func TestReportMatchesGC(t *testing.T) {
	for _, c := range reportCases(t) {
		for _, m := range [][]string{nil, {"-m"}} {
			t.Run(fmt.Sprintf("%s%v", c.name, m), func(t *testing.T) {
				dir := t.TempDir()
				gcOut := mustRun(t, append([]string{"gc", c.cfg, "--dry-run", "-o", "json", "-q", "--index", t.TempDir()}, m...)...)
				mustRun(t, "scan", c.cfg, "-q", "--index", dir)
				repOut := mustRun(t, append([]string{"report", "--index", dir, "-o", "json"}, m...)...)
				var g, r map[string]any
				if err := json.Unmarshal([]byte(gcOut), &g); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(repOut), &r); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"summary", "repositories", "delete", "mode", "warnings", "kept"} {
					if !reflect.DeepEqual(g[k], r[k]) {
						t.Errorf("%s differs:\ngc:     %v\nreport: %v", k, g[k], r[k])
					}
				}
				hasKeys(t, "report", r, "capacity", "index")
				hasKeys(t, "capacity", r["capacity"], "total_bytes", "live_bytes", "garbage_bytes", "dedup_ratio",
					"size_histogram", "age", "repositories", "top")
				if _, ok := r["what_if"]; ok {
					t.Error("what_if without a what-if flag")
				}
				rep := decodeReport(t, repOut)
				if rep.Capacity.TotalBytes != rep.Summary.BlobBytes || rep.Capacity.GarbageBytes != rep.Summary.DeleteBytes {
					t.Errorf("capacity %+v vs summary %+v", rep.Capacity, rep.Summary)
				}
			})
		}
	}
}

func TestReportCSV(t *testing.T) {
	for _, c := range reportCases(t) {
		dir := scanned(t, c.cfg)
		rep := decodeReport(t, mustRun(t, "report", "--index", dir, "-o", "json", "--top", "3"))
		out := mustRun(t, "report", "--index", dir, "-o", "csv", "--top", "3")
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"name", "tags", "manifests", "bytes", "unique_bytes", "shared_bytes", "reclaimable_bytes", "largest_image", "largest_image_bytes", "policy", "policy_delete_tags", "policy_freed_bytes", "last_push"}
		if !reflect.DeepEqual(rows[0], want) {
			t.Fatalf("header %v, want %v", rows[0], want)
		}
		if len(rows)-1 != len(rep.Capacity.Repositories) || len(rows) < 2 {
			t.Fatalf("%s: %d rows for %d repositories", c.name, len(rows)-1, len(rep.Capacity.Repositories))
		}
		for i, rc := range rep.Capacity.Repositories {
			img, imgBytes := "", ""
			if len(rc.LargestImages) > 0 {
				img, imgBytes = rc.LargestImages[0].Tags[0], strconv.FormatInt(rc.LargestImages[0].Bytes, 10)
			}
			w := []string{rc.Name, strconv.Itoa(rc.Tags), strconv.Itoa(rc.Manifests), fmt.Sprint(rc.Bytes), fmt.Sprint(rc.UniqueBytes),
				fmt.Sprint(rc.SharedBytes), fmt.Sprint(rc.ReclaimableBytes), img, imgBytes, "", "", "", ""}
			if !rc.LastPush.IsZero() {
				w[len(w)-1] = rc.LastPush.UTC().Format(time.RFC3339)
			}
			if !reflect.DeepEqual(rows[i+1], w) {
				t.Errorf("%s: row %v, JSON says %v", c.name, rows[i+1], w)
			}
			if rc.RepoStats != rep.Repositories[i] {
				t.Errorf("%s: capacity repository %+v, report %+v", c.name, rc.RepoStats, rep.Repositories[i])
			}
		}
	}
}

func TestReportText(t *testing.T) {
	dir := scanned(t, sampleConfig(t))
	rep := decodeReport(t, mustRun(t, "report", "--index", dir, "-o", "json"))
	out := mustRun(t, "report", "--index", dir)
	c := rep.Capacity
	for _, want := range []string{
		"default mode",
		"Stored:   " + ib(c.TotalBytes) + " in 26 blobs (3 repositories, 4 tags, 8 manifests)",
		"Garbage:  " + ib(c.GarbageBytes),
		fmt.Sprintf("%.2f×", c.DedupRatio),
		"team/app/api", "LARGEST IMAGE", "v1 (" + ib(c.Repositories[1].LargestImages[0].Bytes) + ")",
		"Blob sizes", "Blob age", "<7d",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportWhatIf(t *testing.T) {
	cfg := sampleConfig(t)
	dir := scanned(t, cfg)
	rep := decodeReport(t, mustRun(t, "report", "--index", dir, "-o", "json", "--what-if-untag", "library/debian:12"))
	w := rep.WhatIf
	if w == nil || !rep.Mode.DeleteUntagged {
		t.Fatalf("what-if untag: what_if %v, delete_untagged %v", w, rep.Mode.DeleteUntagged)
	}
	// debian:12 is 4 blobs; its base layer stays (team/app/web uses it).
	var image analysis.ImageInfo
	for _, rc := range rep.Capacity.Repositories {
		if rc.Name == "library/debian" {
			image = rc.LargestImages[0]
		}
	}
	if w.AdditionalBlobs != image.Blobs-1 || w.AdditionalBytes >= image.Bytes || w.AdditionalBytes <= 0 ||
		w.FreedBytesAfter != w.FreedBytesNow+w.AdditionalBytes {
		t.Errorf("what-if %+v; image %+v", w, image)
	}
	// Independently: delete the tag for real (as the registry's tag delete does) and
	// ask gc what it would free.
	root := filepath.Join(filepath.Dir(cfg), "registry")
	if err := os.RemoveAll(filepath.Join(root, "docker/registry/v2/repositories/library/debian/_manifests/tags/12")); err != nil {
		t.Fatal(err)
	}
	var after reportJSON
	if err := json.Unmarshal([]byte(mustRun(t, "gc", cfg, "-d", "-m", "-q", "-o", "json", "--index", t.TempDir())), &after); err != nil {
		t.Fatal(err)
	}
	if after.Summary.DeleteBytes != w.FreedBytesAfter || after.Summary.DeleteBlobs != w.FreedBlobsAfter {
		t.Errorf("what-if says %d bytes in %d blobs after the untag; with the tag deleted gc frees %d in %d", w.FreedBytesAfter, w.FreedBlobsAfter, after.Summary.DeleteBytes, after.Summary.DeleteBlobs)
	}
	text := mustRun(t, "report", "--index", dir, "--what-if-untag", "library/debian:12")
	want := fmt.Sprintf("After deleting tag library/debian:12, GC would free %s (%d blobs) more than the %s it frees now: only the blobs that nothing else references are freed.",
		ib(w.AdditionalBytes), w.AdditionalBlobs, ib(w.FreedBytesNow))
	if !strings.Contains(text, want) {
		t.Errorf("text lacks %q:\n%s", want, text)
	}

	// Deleting a repository frees its unique bytes.
	rep = decodeReport(t, mustRun(t, "report", "--index", dir, "-o", "json", "--what-if-delete-repo", "team/app/api"))
	for _, rs := range rep.Repositories {
		if rs.Name == "team/app/api" && (rep.WhatIf.AdditionalBytes != rs.UniqueBytes || rep.Mode.DeleteUntagged) {
			t.Errorf("deleting team/app/api frees %d, its unique bytes are %d", rep.WhatIf.AdditionalBytes, rs.UniqueBytes)
		}
	}

	for _, args := range [][]string{
		{"--what-if-untag", "library/debian:nope"},
		{"--what-if-untag", "library/debian"},
		{"--what-if-delete-repo", "no/such"},
		{"--output", "yaml"},
		{"--top", "0"},
	} {
		_, err := run(t, append([]string{"report", "--index", dir}, args...)...)
		var ce *codeError
		if !errors.As(err, &ce) || ce.code != exitUsage {
			t.Errorf("report %v: err = %v, want a usage error", args, err)
		}
	}
}

func TestReportNeedsScan(t *testing.T) {
	empty := t.TempDir()
	_, err := run(t, "report", "--index", empty)
	if err == nil || !strings.Contains(err.Error(), "regsweep scan") {
		t.Errorf("report on an empty directory: err = %v", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("report created files in the empty index directory: %v", ents)
	}
	_, err = run(t, "report")
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != exitUsage {
		t.Errorf("report without --index: err = %v", err)
	}
	_, err = run(t, "scan", sampleConfig(t))
	if !errors.As(err, &ce) || ce.code != exitUsage {
		t.Errorf("scan without --index: err = %v", err)
	}
}

func TestReportMetricsFile(t *testing.T) {
	for _, c := range reportCases(t) {
		dir := scanned(t, c.cfg)
		outDir := t.TempDir()
		prom := filepath.Join(outDir, "regsweep.prom")
		before := time.Now()
		out := mustRun(t, "report", "--index", dir, "-o", "json", "-m", "--metrics-file", prom)
		rep := decodeReport(t, out)
		b, err := os.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(prom)
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("metrics file mode %v, want 0644 (node_exporter must read it)", fi.Mode().Perm())
		}
		if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
			t.Errorf("temporary files left beside the metrics file: %v", ents)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: metrics do not parse: %v\n%s", c.name, err, b)
		}
		get := func(name string, labels map[string]string) float64 {
			t.Helper()
			for _, m := range fams[name].GetMetric() {
				got := map[string]string{}
				for _, l := range m.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				if reflect.DeepEqual(got, labels) || len(got) == 0 && len(labels) == 0 {
					return m.GetGauge().GetValue()
				}
			}
			t.Fatalf("%s: no %s%v in\n%s", c.name, name, labels, b)
			return 0
		}
		s := rep.Summary
		type check struct {
			name   string
			labels map[string]string
			want   float64
		}
		checks := []check{
			{"regsweep_report_blobs", map[string]string{"state": "live", "dry_run": "true"}, float64(s.LiveBlobs)},
			{"regsweep_report_blobs", map[string]string{"state": "garbage", "dry_run": "true"}, float64(s.DeleteBlobs)},
			{"regsweep_report_bytes", map[string]string{"state": "live", "dry_run": "true"}, float64(s.LiveBytes)},
			{"regsweep_report_bytes", map[string]string{"state": "garbage", "dry_run": "true"}, float64(s.DeleteBytes)},
			{"regsweep_report_bytes", map[string]string{"state": "kept", "dry_run": "true"}, float64(rep.Capacity.KeptBytes)},
		}
		for _, rs := range rep.Repositories {
			checks = append(checks,
				check{"regsweep_report_repository_bytes", map[string]string{"repository": rs.Name, "kind": "total"}, float64(rs.Bytes)},
				check{"regsweep_report_repository_bytes", map[string]string{"repository": rs.Name, "kind": "unique"}, float64(rs.UniqueBytes)},
				check{"regsweep_report_repository_bytes", map[string]string{"repository": rs.Name, "kind": "shared"}, float64(rs.SharedBytes)},
				check{"regsweep_report_repository_bytes", map[string]string{"repository": rs.Name, "kind": "reclaimable"}, float64(rs.ReclaimableBytes)})
		}
		for _, ck := range checks {
			if got := get(ck.name, ck.labels); got != ck.want {
				t.Errorf("%s: %s%v = %v, JSON says %v", c.name, ck.name, ck.labels, got, ck.want)
			}
		}
		ts := get("regsweep_report_last_success_timestamp_seconds", map[string]string{"dry_run": "true"})
		if ts < float64(before.Unix())-1 || ts > float64(time.Now().Unix())+1 {
			t.Errorf("last success %v, not the time of the run", ts)
		}
		if d := get("regsweep_report_run_duration_seconds", map[string]string{"dry_run": "true"}); d <= 0 || d > 60 {
			t.Errorf("run duration %v", d)
		}
	}
}

func TestGraphCommand(t *testing.T) {
	dir := scanned(t, sampleConfig(t))
	dot := mustRun(t, "graph", "--index", dir, "-m", "team/app/web")
	if !strings.HasPrefix(dot, `digraph "team/app/web" {`) || !strings.Contains(dot, `"tag:latest" -> "sha256:`) {
		t.Errorf("dot output:\n%s", dot)
	}
	mer := mustRun(t, "graph", "--index", dir, "--format", "mermaid", "team/app/web")
	if !strings.HasPrefix(mer, "flowchart LR\n") || !strings.Contains(mer, `(["latest"]):::tag`) {
		t.Errorf("mermaid output:\n%s", mer)
	}
	var g analysis.ImageGraph
	if err := json.Unmarshal([]byte(mustRun(t, "graph", "--index", dir, "--format", "json", "-m", "team/app/web")), &g); err != nil {
		t.Fatal(err)
	}
	// -m: web's orphan layer links are garbage; its base layer is shared with debian.
	states := map[string]int{}
	for _, n := range g.Nodes {
		states[n.State]++
		if n.Shared {
			states["shared"]++
		}
	}
	if states[analysis.StateGarbage] == 0 || states["shared"] == 0 || states[analysis.StateLive] == 0 {
		t.Errorf("node states %v", states)
	}
	if path := dotPath(t); path != "" {
		cmd := exec.Command(path, "-Tsvg")
		cmd.Stdin = strings.NewReader(dot)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("dot -Tsvg: %v\n%s", err, out)
		}
	}
	_, err := run(t, "graph", "--index", dir, "no/such")
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != exitUsage {
		t.Errorf("graph of a missing repository: err = %v", err)
	}
}
