package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/graph"
)

// A capacity report from an index gc built says why ages are unknown and how to get
// them; one from regsweep scan knows them all.
func TestReportExplainsUnknownAges(t *testing.T) {
	cfg := sampleConfig(t)
	byGC := t.TempDir()
	mustRun(t, "gc", cfg, "-d", "-q", "--index", byGC)
	if out := mustRun(t, "report", "--index", byGC); !strings.Contains(out, "have no known age") || !strings.Contains(out, "regsweep scan") {
		t.Errorf("report from gc's index does not explain unknown ages:\n%s", out)
	}
	if out := mustRun(t, "report", "--index", scanned(t, cfg)); strings.Contains(out, "no known age") {
		t.Errorf("report from scan's index claims unknown ages:\n%s", out)
	}
}

// gc's and report's metric files share a textfile directory: no family in both.
func TestMetricsFilesDoNotCollide(t *testing.T) {
	cfg := sampleConfig(t)
	dir := t.TempDir()
	gcProm, reportProm := filepath.Join(dir, "gc.prom"), filepath.Join(dir, "report.prom")
	mustRun(t, "gc", cfg, "-m", "-q", "--index", t.TempDir(), "--metrics-file", gcProm)
	mustRun(t, "report", "--index", scanned(t, cfg), "--metrics-file", reportProm)
	a, err := os.ReadFile(gcProm)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(reportProm)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(append(a, b...)))
	if err != nil {
		t.Fatalf("gc's and report's metrics together do not parse: %v", err)
	}
	for name, f := range fams {
		if strings.HasSuffix(name, "_total") && f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s: a %v named as a counter", name, f.GetType())
		}
	}
	if !strings.Contains(string(a), `regsweep_blobs{state="garbage",dry_run="false"} 0`) {
		t.Errorf("after a real sweep the garbage gauge is not what is left:\n%s", a)
	}
}

// The cached indexes: listed with their storage and state; prune removes the unused
// ones, never one holding an interrupted sweep's journal unless told.
func TestIndexListAndPrune(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	a, b := sampleConfig(t), sampleConfig(t)
	mustRun(t, "gc", a, "-d", "-q")
	mustRun(t, "gc", b, "-d", "-q")
	root, err := indexRoot()
	if err != nil {
		t.Fatal(err)
	}
	var ixs []cachedIndex
	if err := json.Unmarshal([]byte(mustRun(t, "index", "list", "-o", "json")), &ixs); err != nil {
		t.Fatal(err)
	}
	if len(ixs) != 2 || ixs[0].Storage == "" || ixs[0].State != "ok" || ixs[0].Bytes == 0 || ixs[0].Scanned.IsZero() {
		t.Fatalf("indexes %+v", ixs)
	}
	// One holds an interrupted sweep.
	stuck := ixs[1].Dir
	idx, err := graph.Open(stuck)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.JournalPlan([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	idx.Close()
	if out := mustRun(t, "index", "prune", "--older-than", "1h"); !strings.Contains(out, "removed 0 indexes") {
		t.Errorf("prune of fresh indexes:\n%s", out)
	}
	if out := mustRun(t, "index", "prune", "--older-than", "0", "-d"); !strings.Contains(out, "would remove 1 index") {
		t.Errorf("dry run:\n%s", out)
	}
	mustRun(t, "index", "prune", "--older-than", "0")
	left, _ := os.ReadDir(root)
	if len(left) != 1 || filepath.Join(root, left[0].Name()) != stuck {
		t.Errorf("left %v, want only the one with the unfinished sweep", left)
	}
	mustRun(t, "index", "prune", "--older-than", "0", "--all")
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("--all left %v", left)
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n          int
		noun, want string
	}{{1, "blob", "1 blob"}, {0, "blob", "0 blobs"}, {1234, "blob", "1,234 blobs"}, {2, "repository", "2 repositories"},
		{3, "tag history entry", "3 tag history entries"}, {2, "index", "2 indexes"}, {1, "index", "1 index"}, {2, "layer link", "2 layer links"}} {
		if got := plural(c.n, c.noun); got != c.want {
			t.Errorf("plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}

// inmemory storage is the registry process's own memory: refused, saying so.
func TestInmemoryRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte("version: 0.1\nstorage:\n  inmemory: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "gc", cfg, "-d", "-q", "--index", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "inmemory lives in the registry process's memory") {
		t.Errorf("inmemory config: %v", err)
	}
}

// make docs: a man page for every command, and completion scripts the shells accept.
func TestDocs(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "docs", dir)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		page := filepath.Join(dir, "man", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		b, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("%s: no man page: %v", c.CommandPath(), err)
		} else if !strings.Contains(string(b), ".SH NAME") || !strings.Contains(string(b), c.Name()) {
			t.Errorf("%s: man page without NAME", page)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCommand())
	bash := filepath.Join(dir, "completion", "regsweep.bash")
	out, err := exec.Command("bash", "-c", "source "+bash+" && complete -p regsweep").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "regsweep") {
		t.Errorf("bash completion does not load: %v\n%s", err, out)
	}
	for _, f := range []string{"_regsweep", "regsweep.fish"} {
		if b, err := os.ReadFile(filepath.Join(dir, "completion", f)); err != nil || !strings.Contains(string(b), "regsweep") {
			t.Errorf("%s: %v", f, err)
		}
	}
}
