package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// go test ./cmd/regsweep -run Golden -update rewrites testdata/golden after a change
// to help text or report formats; review the diff like code.
var update = flag.Bool("update", false, "rewrite the golden files of help output and report formats")

// golden compares got with testdata/golden/name, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/regsweep -run Golden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); if the change is meant, rerun with -update:\n%s", name, diff)
	}
}

// Every command's help, as an operator reads it: flags, defaults, examples and
// exit codes.
func TestGoldenHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "regsweep completion ") {
			return
		}
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		out := mustRun(t, args...)
		golden(t, filepath.Join("help", strings.ReplaceAll(c.CommandPath(), " ", "_")+".txt"), out)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCommand())
}

// What varies from run to run: the temporary directories, times and dates, the
// index size.
var (
	rfc3339   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	dateOnly  = regexp.MustCompile(`\b\d{4}-\d\d-\d\d\b`)
	durations = regexp.MustCompile(`"(seconds|run_duration_seconds)": [0-9.e-]+`)
)

func normalize(s string, dirs [][2]string) string {
	for _, d := range dirs { // the longest first: one may hold another
		s = strings.ReplaceAll(s, d[0], d[1])
	}
	s = rfc3339.ReplaceAllString(s, "<TIME>")
	s = dateOnly.ReplaceAllString(s, "<DATE>")
	return durations.ReplaceAllString(s, `"$1": <SECONDS>`)
}

// The reports an operator and their scripts read, on the bundled sample: gc dry runs
// (text, JSON; both modes; a scope), report (text, CSV, JSON), verify and inspect.
func TestGoldenReports(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	idx := t.TempDir()
	mustRun(t, "scan", cfg, "--index", idx, "-q")
	dirs := [][2]string{{root, "<ROOT>"}, {idx, "<INDEX>"}, {filepath.Dir(cfg), "<DIR>"}}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"gc-dry-run.txt", []string{"gc", cfg, "-d", "-q", "--index", idx, "--max-index-age", "1h"}},
		{"gc-dry-run-m.txt", []string{"gc", cfg, "-d", "-m", "-q", "--index", idx, "--max-index-age", "1h"}},
		{"gc-dry-run-m.json", []string{"gc", cfg, "-d", "-m", "-o", "json", "-q", "--index", idx, "--max-index-age", "1h"}},
		{"gc-dry-run-scope.txt", []string{"gc", cfg, "-d", "-m", "-q", "--repo", "team/**", "--index", idx, "--max-index-age", "1h"}},
		{"report.txt", []string{"report", "--index", idx, "-m"}},
		{"report.csv", []string{"report", "--index", idx, "-m", "-o", "csv"}},
		{"report.json", []string{"report", "--index", idx, "-m", "-o", "json"}},
		{"verify.txt", []string{"verify", cfg, "-q", "--index", t.TempDir()}},
		{"inspect.txt", []string{"inspect", "--index", idx, "team/app/api:v1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			golden(t, filepath.Join("reports", c.name), normalize(mustRun(t, c.args...), dirs))
		})
	}
}
