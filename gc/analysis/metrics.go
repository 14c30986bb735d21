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
	// Duration is how long the run took (scan, plan and sweep, or the report).
	Duration time.Duration
	// LastSuccess is when the run finished successfully; zero leaves the metric out,
	// so write metrics only after a run succeeded or leave this zero on failure.
	LastSuccess time.Time
}

// WriteMetrics writes rep as Prometheus metrics in the text exposition format that
// node_exporter's textfile collector reads. Counts of a real sweep come from
// rep.Result and are left out when it is nil (dry runs, reports). Every value is of
// the last run, so every metric is a gauge.
func WriteMetrics(w io.Writer, rep *Report, extra MetricsExtra) error {
	bw := bufio.NewWriter(w)
	s := rep.Summary
	family := func(name, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", name, escapeHelp(help), name)
	}
	sample := func(name string, v float64, labels ...string) {
		bw.WriteString(name)
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
	family("regsweep_blobs", "Blobs in the blob store by state: live (reachable), garbage (the plan deletes them), kept (neither: younger than grace or kept by fail-closed rules).")
	sample("regsweep_blobs", float64(s.LiveBlobs), "state", "live")
	sample("regsweep_blobs", float64(s.DeleteBlobs), "state", "garbage")
	sample("regsweep_blobs", float64(keptBlobs), "state", "kept")
	family("regsweep_bytes", "Bytes of the blobs in the blob store by state, as regsweep_blobs.")
	sample("regsweep_bytes", float64(s.LiveBytes), "state", "live")
	sample("regsweep_bytes", float64(s.DeleteBytes), "state", "garbage")
	sample("regsweep_bytes", float64(keptBytes), "state", "kept")

	family("regsweep_repository_bytes", "Per repository: total (distinct blobs its live manifests reach), unique (reached by no other repository), shared (total - unique), reclaimable (garbage it links).")
	for _, r := range rep.Repositories {
		sample("regsweep_repository_bytes", float64(r.Bytes), "repository", r.Name, "kind", "total")
		sample("regsweep_repository_bytes", float64(r.UniqueBytes), "repository", r.Name, "kind", "unique")
		sample("regsweep_repository_bytes", float64(r.SharedBytes), "repository", r.Name, "kind", "shared")
		sample("regsweep_repository_bytes", float64(r.ReclaimableBytes), "repository", r.Name, "kind", "reclaimable")
	}

	family("regsweep_run_duration_seconds", "How long the last run took.")
	sample("regsweep_run_duration_seconds", extra.Duration.Seconds())

	if res := rep.Result; res != nil {
		family("regsweep_deleted_total", "What the last sweep deleted, by kind (of that run, not cumulative).")
		sample("regsweep_deleted_total", float64(res.DeletedTags), "kind", "tags")
		sample("regsweep_deleted_total", float64(res.DeletedBlobs), "kind", "blobs")
		sample("regsweep_deleted_total", float64(res.DeletedManifests), "kind", "manifests")
		sample("regsweep_deleted_total", float64(res.DeletedLayerLinks), "kind", "layer_links")
		sample("regsweep_deleted_total", float64(res.DeletedUploads), "kind", "uploads")
	}
	if r := rep.Retention; r != nil {
		family("regsweep_retention_tags", "Per retention policy: tags in the repositories it applies to, by what it decides (delete, or kept by a safety rule although no entry keeps them).")
		for _, p := range r.Policies {
			sample("regsweep_retention_tags", float64(p.Tags), "policy", p.Policy, "decision", "all")
			sample("regsweep_retention_tags", float64(p.DeleteTags), "policy", p.Policy, "decision", "delete")
			sample("regsweep_retention_tags", float64(p.KeptBySafety), "policy", p.Policy, "decision", "kept_by_safety")
		}
		family("regsweep_retention_freed_bytes", "Per retention policy: bytes the plan deletes only because of the tags the policy deletes.")
		for _, p := range r.Policies {
			sample("regsweep_retention_freed_bytes", float64(p.FreedBytes), "policy", p.Policy)
		}
	}
	if w := rep.Window; w != nil {
		stopped := 0.0
		if w.Stopped {
			stopped = 1
		}
		family("regsweep_window_stopped", "1 when the last run stopped at its maintenance window's end with work left (the next run continues).")
		sample("regsweep_window_stopped", stopped)
		if res := rep.Result; res != nil && res.Remaining != nil {
			family("regsweep_window_remaining_items", "Deletes the last run left for the next one when its window ended.")
			sample("regsweep_window_remaining_items", float64(res.Remaining.Items()))
		}
	}
	if !extra.LastSuccess.IsZero() {
		family("regsweep_last_success_timestamp_seconds", "Unix time the last successful run finished.")
		sample("regsweep_last_success_timestamp_seconds", float64(extra.LastSuccess.UnixNano())/1e9)
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
