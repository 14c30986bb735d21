package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/regsweep/regsweep/gc/verify"
)

func decodeVerify(t *testing.T, out string) verify.Report {
	t.Helper()
	var r verify.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

// blobData is the data file of the blob a link names.
func blobData(t *testing.T, root, link string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker/registry/v2", link))
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(string(b), "sha256:")
	return filepath.Join(root, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

func TestVerifyCommand(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	out := mustRun(t, "verify", cfg, "-q", "--index", t.TempDir())
	if !strings.Contains(out, "OK:") {
		t.Errorf("clean sample:\n%s", out)
	}
	rep := decodeVerify(t, mustRun(t, "verify", cfg, "-q", "-m", "--checksums", "-o", "json", "--index", t.TempDir()))
	if !rep.Clean() || rep.Summary.BlobsHashed == 0 || rep.Summary.Roots != 4 || !rep.DeleteUntagged || !rep.Checksums {
		t.Errorf("clean sample, -m --checksums: %+v", rep)
	}

	// debian:12's manifest is gone: exit 6, the tag named.
	if err := os.Remove(blobData(t, root, "repositories/library/debian/_manifests/tags/12/current/link")); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "verify", cfg, "-q", "-o", "json", "--index", t.TempDir())
	if exitCode(err) != exitDamaged {
		t.Fatalf("exit %d (%v), want 6", exitCode(err), err)
	}
	rep = decodeVerify(t, out)
	if rep.Clean() || rep.Problems[0].Kind != verify.MissingManifest || rep.Problems[0].Repository != "library/debian" || strings.Join(rep.Problems[0].Tags, ",") != "12" {
		t.Errorf("problems %+v", rep.Problems)
	}
	text, _ := run(t, "verify", cfg, "-q", "--index", t.TempDir())
	if !strings.Contains(text, "[missing_manifest] library/debian (tags 12)") {
		t.Errorf("text report:\n%s", text)
	}
}

// A real sweep checks what it kept: storage that loses a live blob while the sweep
// runs (here: someone else deletes it) ends in exit 6 naming the tags, never green.
func TestGCChecksAfterSweep(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	live := blobData(t, root, "repositories/team/app/web/_manifests/tags/latest/current/link")
	var once sync.Once
	testBeforeDelete = func(string) error {
		once.Do(func() { os.Remove(live) })
		return nil
	}
	out, err := run(t, "gc", cfg, "-m", "-q", "-o", "json", "--index", t.TempDir())
	testBeforeDelete = nil
	if exitCode(err) != exitDamaged || !strings.Contains(err.Error(), "team/app/web (tags latest") {
		t.Fatalf("exit %d (%v), want 6 naming team/app/web:latest", exitCode(err), err)
	}
	var rep struct {
		Result *struct {
			DeletedBlobs int `json:"deleted_blobs"`
		} `json:"result"`
		Verify *verify.Report `json:"verify"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result == nil || rep.Result.DeletedBlobs == 0 || rep.Verify == nil || rep.Verify.Clean() {
		t.Errorf("report: result %+v, verify %+v", rep.Result, rep.Verify)
	}
	// --no-verify skips the check.
	cfg2 := sampleConfig(t)
	live2 := blobData(t, regRoot(t, cfg2), "repositories/team/app/web/_manifests/tags/latest/current/link")
	var once2 sync.Once
	testBeforeDelete = func(string) error {
		once2.Do(func() { os.Remove(live2) })
		return nil
	}
	_, err = run(t, "gc", cfg2, "-m", "-q", "--no-verify", "--index", t.TempDir())
	testBeforeDelete = nil
	if err != nil {
		t.Errorf("--no-verify: %v", err)
	}
	// A clean sweep says so.
	cfg3 := sampleConfig(t)
	text := mustRun(t, "gc", cfg3, "-m", "-q", "--index", t.TempDir())
	if !strings.Contains(text, "OK:") {
		t.Errorf("a clean sweep's report does not say the check passed:\n%s", text)
	}
}
