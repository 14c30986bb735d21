package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleConfig copies the sample registry, ages it past the grace period and
// returns a config.yml for it.
func sampleConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	if err := os.CopyFS(root, os.DirFS("../../testdata/sample/registry")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	y := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + root + "\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func keys(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", v)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func hasKeys(t *testing.T, what string, v any, want ...string) {
	t.Helper()
	got := keys(t, v)
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("%s lacks %q (has %v)", what, w, got)
		}
	}
}

// TestReportContract checks every field docs/design.md's report contract names.
func TestReportContract(t *testing.T) {
	cfg := sampleConfig(t)
	out, err := run(t, "gc", cfg, "--dry-run", "-m", "--output", "json", "-q")
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	hasKeys(t, "report", r, "mode", "summary", "delete", "repositories", "warnings")
	hasKeys(t, "mode", r["mode"], "dry_run", "delete_untagged", "grace_seconds")
	hasKeys(t, "summary", r["summary"], "repositories", "tags", "manifests", "blobs", "blob_bytes",
		"live_blobs", "live_bytes", "delete_blobs", "delete_bytes", "delete_manifests",
		"delete_layer_links", "delete_uploads", "kept_by_grace", "unreadable_manifests")
	del := r["delete"].(map[string]any)
	hasKeys(t, "delete", del, "blobs", "manifests", "layer_links", "uploads")
	first := func(k string) any {
		l := del[k].([]any)
		if len(l) == 0 {
			t.Fatalf("delete.%s is empty on the sample registry", k)
		}
		return l[0]
	}
	hasKeys(t, "delete.blobs[]", first("blobs"), "digest", "size")
	hasKeys(t, "delete.manifests[]", first("manifests"), "repository", "digest")
	hasKeys(t, "delete.layer_links[]", first("layer_links"), "repository", "digest")
	hasKeys(t, "delete.uploads[]", first("uploads"), "repository", "id", "started_at")
	repos := r["repositories"].([]any)
	if len(repos) != 3 {
		t.Fatalf("repositories = %d, want 3", len(repos))
	}
	hasKeys(t, "repositories[]", repos[0], "name", "tags", "manifests", "bytes", "unique_bytes", "shared_bytes", "reclaimable_bytes")
	mode := r["mode"].(map[string]any)
	if mode["dry_run"] != true || mode["delete_untagged"] != true || mode["grace_seconds"].(float64) != 3600 {
		t.Errorf("mode = %v", mode)
	}
	s := r["summary"].(map[string]any)
	// The sample: 3 repositories, 4 tags; -m deletes debian's untagged 12.0 image
	// (manifest, config, layer), web's deleted "old" image (manifest, config, layer)
	// and the orphan blob; the stale upload.
	want := map[string]float64{"repositories": 3, "tags": 4, "delete_blobs": 7, "delete_manifests": 1, "delete_uploads": 1, "unreadable_manifests": 0}
	for k, v := range want {
		if s[k].(float64) != v {
			t.Errorf("summary.%s = %v, want %v", k, s[k], v)
		}
	}
	if s["blobs"].(float64) != s["live_blobs"].(float64)+s["delete_blobs"].(float64)+s["kept_by_grace"].(float64) {
		t.Errorf("blobs != live + delete + kept: %v", s)
	}
}

func TestTextReport(t *testing.T) {
	cfg := sampleConfig(t)
	out, err := run(t, "gc", cfg, "-d", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 repositories, 4 tags", "would delete 4 blobs", "team/app/web", "RECLAIMABLE"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestGCSweepsAndReportsToTheByte(t *testing.T) {
	cfg := sampleConfig(t)
	blobs := filepath.Join(filepath.Dir(cfg), "registry", "docker", "registry", "v2", "blobs")
	onDisk := func() int64 {
		var n int64
		filepath.Walk(blobs, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n += fi.Size()
			}
			return err
		})
		return n
	}
	before := onDisk()
	out, err := run(t, "gc", cfg, "-m", "-o", "json", "-q", "--index", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Mode struct {
			DryRun bool `json:"dry_run"`
		}
		Summary struct {
			DeleteBlobs int   `json:"delete_blobs"`
			DeleteBytes int64 `json:"delete_bytes"`
			BlobBytes   int64 `json:"blob_bytes"`
		}
		Result *struct {
			DeletedBlobs int   `json:"deleted_blobs"`
			FreedBytes   int64 `json:"freed_bytes"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Mode.DryRun || rep.Result == nil {
		t.Fatalf("real run reported as dry run or without result: %s", out)
	}
	if freed := before - onDisk(); rep.Result.FreedBytes != freed || rep.Summary.DeleteBytes != freed || rep.Result.DeletedBlobs != rep.Summary.DeleteBlobs || freed == 0 {
		t.Errorf("result %+v, summary %+v; the disk lost %d bytes of blobs", rep.Result, rep.Summary, freed)
	}
	// The storage shrank by exactly what was reported.
	out2, err := run(t, "gc", cfg, "-m", "-d", "-o", "json", "-q", "--index", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var rep2 struct {
		Summary struct {
			DeleteBlobs int   `json:"delete_blobs"`
			BlobBytes   int64 `json:"blob_bytes"`
		}
	}
	if err := json.Unmarshal([]byte(out2), &rep2); err != nil {
		t.Fatal(err)
	}
	if rep2.Summary.DeleteBlobs != 0 || rep2.Summary.BlobBytes != rep.Summary.BlobBytes-rep.Result.FreedBytes {
		t.Errorf("after the sweep: %+v; before %d bytes, freed %d", rep2.Summary, rep.Summary.BlobBytes, rep.Result.FreedBytes)
	}
}

func TestPlanAndApply(t *testing.T) {
	cfg := sampleConfig(t)
	plan := filepath.Join(t.TempDir(), "plan.json")
	if _, err := run(t, "gc", cfg, "-d", "-m", "-q", "--plan-out", plan, "--index", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	// Another registry's storage: refused.
	other := sampleConfig(t)
	_, err := run(t, "apply", other, plan, "-q", "--index", t.TempDir())
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != exitUsage || !strings.Contains(err.Error(), "was made for storage") {
		t.Fatalf("apply to other storage: err = %v", err)
	}
	out, err := run(t, "apply", cfg, plan, "-q", "-o", "json", "--index", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Result struct {
			DeletedBlobs     int `json:"deleted_blobs"`
			DeletedManifests int `json:"deleted_manifests"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result.DeletedBlobs != 7 || rep.Result.DeletedManifests != 1 {
		t.Errorf("apply result = %+v, want 7 blobs and 1 manifest", rep.Result)
	}
}

func TestSweepRefusesUnreadable(t *testing.T) {
	cfg := sampleConfig(t)
	root := filepath.Join(filepath.Dir(cfg), "registry")
	// Truncate the manifest team/app/api:v1 names.
	tag, err := os.ReadFile(filepath.Join(root, "docker/registry/v2/repositories/team/app/api/_manifests/tags/v1/current/link"))
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(string(tag), "sha256:")
	blob := filepath.Join(root, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	if err := os.WriteFile(blob, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manif`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "gc", cfg, "-q", "--index", t.TempDir())
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != exitBlocked || !strings.Contains(err.Error(), "sha256:"+hex) {
		t.Fatalf("err = %v, want refusal naming the manifest", err)
	}
	if _, err := os.Stat(blob); err != nil {
		t.Fatal("refused sweep deleted the unreadable manifest")
	}
	// --ignore-unreadable sweeps, but keeps what the unreadable index might reference;
	// the check after the sweep says v1 is still broken (exit 6).
	_, err = run(t, "gc", cfg, "-m", "-q", "--ignore-unreadable", "--index", t.TempDir())
	if exitCode(err) != exitDamaged || !strings.Contains(err.Error(), "[unreadable_manifest] team/app/api (tags v1)") {
		t.Fatalf("err = %v, want exit 6 naming team/app/api:v1", err)
	}
	links, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/team/app/api/_manifests/revisions/sha256/*/link"))
	if len(links) != 4 {
		t.Errorf("revision links left in team/app/api: %d, want all 4", len(links))
	}
}

func TestEnvironmentOverride(t *testing.T) {
	cfg := sampleConfig(t)
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", t.TempDir())
	_, err := run(t, "gc", cfg, "-d", "-q")
	if err == nil || !strings.Contains(err.Error(), "docker/registry/v2") {
		t.Fatalf("err = %v: REGISTRY_* override not applied (want empty root refused)", err)
	}
}

func TestMaxIndexAge(t *testing.T) {
	cfg := sampleConfig(t)
	index := t.TempDir()
	summary := func(args ...string) map[string]any {
		t.Helper()
		out, err := run(t, append([]string{"gc", cfg, "-d", "-q", "-o", "json", "--index", index}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r["summary"].(map[string]any)
	}
	first := summary()
	// Remove the orphan blob behind the index's back.
	root := filepath.Join(filepath.Dir(cfg), "registry", "docker/registry/v2/blobs")
	var orphan string
	filepath.Walk(root, func(p string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.HasPrefix(string(b), "orphan blob") {
				orphan = filepath.Dir(p)
			}
		}
		return nil
	})
	if orphan == "" {
		t.Fatal("no orphan blob in the sample")
	}
	if err := os.RemoveAll(orphan); err != nil {
		t.Fatal(err)
	}
	if reused := summary("--max-index-age", "1h"); reused["blobs"] != first["blobs"] {
		t.Errorf("--max-index-age 1h rescanned: %v blobs, index had %v", reused["blobs"], first["blobs"])
	}
	if fresh := summary(); fresh["blobs"].(float64) != first["blobs"].(float64)-1 {
		t.Errorf("default run did not rescan: %v blobs, want %v", fresh["blobs"], first["blobs"].(float64)-1)
	}
}

func TestGCMetricsFile(t *testing.T) {
	cfg := sampleConfig(t)
	metrics := filepath.Join(t.TempDir(), "regsweep.prom")
	if _, err := run(t, "gc", cfg, "-m", "-q", "--index", t.TempDir(), "--metrics-file", metrics); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`regsweep_last_sweep_deleted{kind="blobs"} 7`, "regsweep_last_success_timestamp_seconds", "regsweep_run_duration_seconds"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}
