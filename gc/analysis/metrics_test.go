package analysis_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/sweep"
)

// parseMetrics parses text exposition format strictly (legacy metric and label names,
// as node_exporter's textfile collector wants them).
func parseMetrics(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, b)
	}
	return fams
}

// metricValue returns the value of name's sample with exactly labels (name=value pairs).
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	if f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" {
		t.Errorf("%s: type %v, help %q", name, f.GetType(), f.GetHelp())
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels)/2 {
			continue
		}
		for _, l := range m.Label {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				found = found || labels[i] == l.GetName() && labels[i+1] == l.GetValue()
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

func TestMetrics(t *testing.T) {
	for _, r := range capRegistries(t) {
		for _, m := range []bool{false, true} {
			p := r.plan(t, m)
			rep := analysis.NewReport(p, true)
			var b bytes.Buffer
			at := time.Unix(1700000000, 500e6)
			if err := analysis.WriteMetrics(&b, rep, analysis.MetricsExtra{Duration: 1500 * time.Millisecond, LastSuccess: at}); err != nil {
				t.Fatal(err)
			}
			fams := parseMetrics(t, b.Bytes())
			s := rep.Summary
			want := map[[2]string]float64{
				{"regsweep_blobs", "live"}:    float64(s.LiveBlobs),
				{"regsweep_blobs", "garbage"}: float64(s.DeleteBlobs),
				{"regsweep_blobs", "kept"}:    float64(s.Blobs - s.LiveBlobs - s.DeleteBlobs),
				{"regsweep_bytes", "live"}:    float64(s.LiveBytes),
				{"regsweep_bytes", "garbage"}: float64(s.DeleteBytes),
				{"regsweep_bytes", "kept"}:    float64(s.BlobBytes - s.LiveBytes - s.DeleteBytes),
			}
			var blobs, bytes float64
			for k, v := range want {
				got := metricValue(t, fams, k[0], "state", k[1], "dry_run", "true")
				if got != v {
					t.Errorf("%s: %s{state=%q} = %v, want %v", r.name, k[0], k[1], got, v)
				}
				if k[0] == "regsweep_blobs" {
					blobs += got
				} else {
					bytes += got
				}
			}
			if blobs != float64(s.Blobs) || bytes != float64(s.BlobBytes) {
				t.Errorf("%s: states add up to %v blobs, %v bytes; summary %d, %d", r.name, blobs, bytes, s.Blobs, s.BlobBytes)
			}
			for _, rs := range rep.Repositories {
				for kind, v := range map[string]int64{"total": rs.Bytes, "unique": rs.UniqueBytes, "shared": rs.SharedBytes, "reclaimable": rs.ReclaimableBytes} {
					if got := metricValue(t, fams, "regsweep_repository_bytes", "repository", rs.Name, "kind", kind); got != float64(v) {
						t.Errorf("%s: %s %s = %v, want %d", r.name, rs.Name, kind, got, v)
					}
				}
			}
			if n := len(fams["regsweep_repository_bytes"].Metric); n != 4*len(rep.Repositories) {
				t.Errorf("%d repository samples, want %d", n, 4*len(rep.Repositories))
			}
			if got := metricValue(t, fams, "regsweep_run_duration_seconds", "dry_run", "true"); got != 1.5 {
				t.Errorf("duration %v", got)
			}
			if got := metricValue(t, fams, "regsweep_last_success_timestamp_seconds", "dry_run", "true"); got != 1700000000.5 {
				t.Errorf("last success %v", got)
			}
			for name := range fams {
				if strings.HasSuffix(name, "_total") {
					t.Errorf("%s: a gauge named as a counter", name)
				}
			}
			if _, ok := fams["regsweep_last_sweep_deleted"]; ok {
				t.Error("a dry run reports deletions")
			}
		}
	}
}

func TestMetricsResultAndEscaping(t *testing.T) {
	odd := "team/a\"b\\c\nd"
	rep := &analysis.Report{
		Summary:      gc.Summary{Blobs: 10, LiveBlobs: 4, DeleteBlobs: 5, BlobBytes: 100, LiveBytes: 40, DeleteBytes: 50},
		Repositories: []gc.RepoStats{{Name: odd, Bytes: 10, UniqueBytes: 4, SharedBytes: 6, ReclaimableBytes: 1}},
		Result:       &sweep.Result{DeletedTags: 4, DeletedBlobs: 3, FreedBytes: 30, FreedUploadBytes: 7, DeletedManifests: 2, DeletedLayerLinks: 5, DeletedUploads: 1},
	}
	var b bytes.Buffer
	if err := analysis.WriteMetrics(&b, rep, analysis.MetricsExtra{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `repository="team/a\"b\\c\nd"`) {
		t.Errorf("label not escaped:\n%s", b.String())
	}
	fams := parseMetrics(t, b.Bytes())
	if got := metricValue(t, fams, "regsweep_repository_bytes", "repository", odd, "kind", "unique"); got != 4 {
		t.Errorf("escaped repository round trip: %v", got)
	}
	for kind, v := range map[string]float64{"tags": 4, "blobs": 3, "manifests": 2, "layer_links": 5, "uploads": 1} {
		if got := metricValue(t, fams, "regsweep_last_sweep_deleted", "kind", kind); got != v {
			t.Errorf("deleted %s = %v, want %v", kind, got, v)
		}
	}
	for kind, v := range map[string]float64{"blobs": 30, "uploads": 7} {
		if got := metricValue(t, fams, "regsweep_last_sweep_freed_bytes", "kind", kind); got != v {
			t.Errorf("freed %s bytes = %v, want %v", kind, got, v)
		}
	}
	// After a real sweep the garbage gauges say what is left: 5 planned, 3 deleted.
	if got := metricValue(t, fams, "regsweep_blobs", "state", "garbage", "dry_run", "false"); got != 2 {
		t.Errorf("garbage blobs after the sweep = %v, want 2", got)
	}
	if got := metricValue(t, fams, "regsweep_bytes", "state", "garbage", "dry_run", "false"); got != 20 {
		t.Errorf("garbage bytes after the sweep = %v, want 20", got)
	}
	if _, ok := fams["regsweep_last_success_timestamp_seconds"]; ok {
		t.Error("last success written without a success time")
	}
}
