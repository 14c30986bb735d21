package main

import (
	"strings"
	"testing"
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
