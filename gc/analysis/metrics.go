package analysis

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MetricsExtra is what a report does not know about the run that made it.
type MetricsExtra struct {
	// Prefix starts every metric name (default "regsweep_"): regsweep report writes
	// "regsweep_report_", so that gc's and report's files can share a textfile
	// directory without colliding.
	Prefix string
	// Duration is how long the run took (scan, plan and sweep, or the report).
	Duration time.Duration
	// LastSuccess is when the run finished successfully; zero leaves the metric out,
	// so write metrics only after a run succeeded or leave this zero on failure.
	LastSuccess time.Time
}

// WriteMetrics writes rep as Prometheus metrics in the text exposition format that
// node_exporter's textfile collector reads. Counts of a real sweep come from
// rep.Result and are left out when it is nil (dry runs, reports). Every value is of
// the last run, so every metric is a gauge, and none is named _total. The state of
// the blob store carries dry_run: after a real sweep, garbage is what is left.
func WriteMetrics(w io.Writer, rep *Report, extra MetricsExtra) error {
	bw := bufio.NewWriter(w)
	s := rep.Summary
	prefix := extra.Prefix
	if prefix == "" {
		prefix = "regsweep_"
	}
	family := func(name, help string) {
		name = prefix + name
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", name, escapeHelp(help), name)
	}
	dry := strconv.FormatBool(rep.Mode.DryRun || rep.Result == nil)
	sample := func(name string, v float64, labels ...string) {
		bw.WriteString(prefix + name)
		if len(labels) > 0 {
			bw.WriteByte('{')
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					bw.WriteByte(',')
				}
				fmt.Fprintf(bw, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
			}
			bw.WriteByte('}')
		}
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
		bw.WriteByte('\n')
	}

	keptBlobs := s.Blobs - s.LiveBlobs - s.DeleteBlobs
	keptBytes := s.BlobBytes - s.LiveBytes - s.DeleteBytes
	garbageBlobs, garbageBytes := s.DeleteBlobs, s.DeleteBytes
	if res := rep.Result; res != nil {
		// What the sweep left: what it did not delete.
		garbageBlobs, garbageBytes = max(0, s.DeleteBlobs-res.DeletedBlobs), max(0, s.DeleteBytes-res.FreedBytes)
	}
	family("blobs", "Blobs in the blob store by state: live (reachable), garbage (what the plan deletes; after a real sweep, what it left), kept (neither: younger than grace or kept by fail-closed rules).")
	sample("blobs", float64(s.LiveBlobs), "state", "live", "dry_run", dry)
	sample("blobs", float64(garbageBlobs), "state", "garbage", "dry_run", dry)
	sample("blobs", float64(keptBlobs), "state", "kept", "dry_run", dry)
	family("bytes", "Bytes of the blobs in the blob store by state, as the blobs metric.")
	sample("bytes", float64(s.LiveBytes), "state", "live", "dry_run", dry)
	sample("bytes", float64(garbageBytes), "state", "garbage", "dry_run", dry)
	sample("bytes", float64(keptBytes), "state", "kept", "dry_run", dry)

	family("repository_bytes", "Per repository: total (distinct blobs its live manifests reach), unique (reached by no other repository), shared (total - unique), reclaimable (garbage it links).")
	for _, r := range rep.Repositories {
		sample("repository_bytes", float64(r.Bytes), "repository", r.Name, "kind", "total")
		sample("repository_bytes", float64(r.UniqueBytes), "repository", r.Name, "kind", "unique")
		sample("repository_bytes", float64(r.SharedBytes), "repository", r.Name, "kind", "shared")
		sample("repository_bytes", float64(r.ReclaimableBytes), "repository", r.Name, "kind", "reclaimable")
	}

	family("run_duration_seconds", "How long the last run took.")
	sample("run_duration_seconds", extra.Duration.Seconds(), "dry_run", dry)

	if res := rep.Result; res != nil {
		family("last_sweep_deleted", "What the last sweep deleted, by kind.")
		for _, k := range []struct {
			kind string
			n    int
		}{{"tags", res.DeletedTags}, {"manifests", res.DeletedManifests}, {"tag_index", res.DeletedTagIndex}, {"blobs", res.DeletedBlobs},
			{"layer_links", res.DeletedLayerLinks}, {"uploads", res.DeletedUploads}, {"repositories", res.DeletedRepositories}} {
			sample("last_sweep_deleted", float64(k.n), "kind", k.kind)
		}
		family("last_sweep_freed_bytes", "Bytes the last sweep freed: blob data and stale uploads.")
		sample("last_sweep_freed_bytes", float64(res.FreedBytes), "kind", "blobs")
		sample("last_sweep_freed_bytes", float64(res.FreedUploadBytes), "kind", "uploads")
	}
	if r := rep.Retention; r != nil {
		family("retention_tags", "Per retention policy: tags in the repositories it applies to, by what it decides (delete, or kept by a safety rule although no entry keeps them).")
		for _, p := range r.Policies {
			sample("retention_tags", float64(p.Tags), "policy", p.Policy, "decision", "all")
			sample("retention_tags", float64(p.DeleteTags), "policy", p.Policy, "decision", "delete")
			sample("retention_tags", float64(p.KeptBySafety), "policy", p.Policy, "decision", "kept_by_safety")
		}
		family("retention_freed_bytes", "Per retention policy: bytes the plan deletes only because of the tags the policy deletes.")
		for _, p := range r.Policies {
			sample("retention_freed_bytes", float64(p.FreedBytes), "policy", p.Policy)
		}
	}
	if w := rep.Window; w != nil {
		stopped := 0.0
		if w.Stopped {
			stopped = 1
		}
		family("window_stopped", "1 when the last run stopped at its maintenance window's end with work left (the next run continues).")
		sample("window_stopped", stopped)
		if res := rep.Result; res != nil && res.Remaining != nil {
			family("window_remaining_items", "Deletes the last run left for the next one when its window ended.")
			sample("window_remaining_items", float64(res.Remaining.Items()))
		}
	}
	if !extra.LastSuccess.IsZero() {
		family("last_success_timestamp_seconds", "Unix time the last successful run finished.")
		sample("last_success_timestamp_seconds", float64(extra.LastSuccess.UnixNano())/1e9, "dry_run", dry)
	}
	return bw.Flush()
}

// escapeLabel escapes a label value: backslash, double quote and line feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
