package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
