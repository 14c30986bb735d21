package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/internal/runlock"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// writeConfig writes a filesystem config for root, spelled as given.
func writeConfig(t *testing.T, root string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+root+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Two real sweeps of one storage cannot run at once, however the root is spelled
// and whichever index each uses; the refusal names the process that holds it.
func TestOneSweepPerStorage(t *testing.T) {
	cfg := sampleConfig(t)
	root := filepath.Join(filepath.Dir(cfg), "registry")
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(filepath.Dir(cfg), alias); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := configuration.Parse(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	held, err := runlock.Acquire(storage.ID(parsed))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	for _, spelling := range []string{root, root + "/./", filepath.Join(alias, "registry")} {
		for _, cmd := range [][]string{{"gc", writeConfig(t, spelling), "-q", "--index", t.TempDir()}, {"gc", writeConfig(t, spelling), "-m", "-q", "--index", t.TempDir()}} {
			_, err := run(t, cmd...)
			if !errors.Is(err, runlock.ErrHeld) || !strings.Contains(err.Error(), "pid ") {
				t.Errorf("%s: err = %v, want the storage lock held, naming its holder", spelling, err)
			}
		}
	}
	// A dry run deletes nothing and needs no lock.
	if _, err := run(t, "gc", writeConfig(t, root+"/"), "-d", "-q", "--index", t.TempDir()); err != nil {
		t.Errorf("dry run while a sweep runs: %v", err)
	}
	held.Release()
	if _, err := run(t, "gc", writeConfig(t, filepath.Join(alias, "registry")), "-q", "--index", t.TempDir()); err != nil {
		t.Errorf("after the lock is released: %v", err)
	}
}

// An output that cannot be written fails the run before anything is deleted.
func TestBadOutputPathFailsFirst(t *testing.T) {
	for _, flag := range []string{"--metrics-file", "--plan-out"} {
		cfg := sampleConfig(t)
		root := filepath.Join(filepath.Dir(cfg), "registry")
		before := countFiles(t, root)
		_, err := run(t, "gc", cfg, "-q", "--index", t.TempDir(), flag, filepath.Join(t.TempDir(), "no", "such", "dir", "out"))
		if err == nil || !strings.Contains(err.Error(), "cannot be written") {
			t.Errorf("%s to a missing directory: err = %v", flag, err)
		}
		if after := countFiles(t, root); after != before {
			t.Errorf("%s: the failed run deleted %d files", flag, before-after)
		}
	}
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	if err := filepath.Walk(root, func(_ string, _ os.FileInfo, err error) error { n++; return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A plan applied, interrupted, and applied again: what the first run deleted is
// reported as already deleted (the journal says so), not as no longer garbage.
func TestApplyAfterCrashSaysAlreadyDeleted(t *testing.T) {
	cfg := sampleConfig(t)
	dir := t.TempDir()
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if _, err := run(t, "gc", cfg, "-d", "-m", "-q", "--index", dir, "--plan-out", planFile); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	var mu sync.Mutex
	crash := errors.New("crash")
	testBeforeDelete = func(path string) error {
		mu.Lock()
		defer mu.Unlock()
		if len(deleted) == 3 {
			return crash
		}
		deleted = append(deleted, path)
		return nil
	}
	_, err := run(t, "apply", cfg, planFile, "-q", "--index", dir, "--registry-url", "none", "--workers", "1")
	testBeforeDelete = nil
	if !errors.Is(err, crash) {
		t.Fatalf("first apply: %v", err)
	}
	out, err := run(t, "apply", cfg, planFile, "-q", "-o", "json", "--index", dir, "--registry-url", "none")
	if err != nil {
		t.Fatal(err)
	}
	var rep analysis.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, d := range deleted {
		if !slices.Contains(rep.AlreadyDeleted, d) {
			t.Errorf("%s, deleted by the interrupted run, is not reported as already deleted: %v", d, rep.AlreadyDeleted)
		}
		if slices.Contains(rep.Dropped, d) {
			t.Errorf("%s is reported as no longer garbage", d)
		}
	}
	if rep.Result == nil || rep.Result.DeletedBlobs == 0 {
		t.Errorf("the second apply deleted nothing: %+v", rep.Result)
	}
}

// A store that leaves one request in ten unanswered: gc ends, says it is retrying,
// and plans what a healthy store gives.
func TestGCOnHangingObjectStore(t *testing.T) {
	s3, err := benchenv.NewS3("registry")
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	ctx := context.Background()
	drv, err := s3.Driver(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.Generate(ctx, drv, 5, synth.Layout{Repos: 3, ManifestsPerRepo: 4, TagsPerRepo: 2, LayersPerManifest: 2, OrphanBlobs: 5}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(s3.Config("/")), 0o644); err != nil {
		t.Fatal(err)
	}
	healthy, err := run(t, "gc", cfg, "-d", "-q", "-o", "json", "--index", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	s3.SetFault(s3.Hang(func(*http.Request) bool { return n.Add(1)%10 == 0 }))
	cmd := newRootCommand()
	var out, log bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&log)
	cmd.SetArgs([]string{"gc", cfg, "-d", "-o", "json", "--index", t.TempDir(), "--request-timeout", "1s"})
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("gc waits forever on a request the store never answers")
	}
	var a, b analysis.Report
	if err := json.Unmarshal([]byte(healthy), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Summary, b.Summary) || len(a.Delete.Blobs) != len(b.Delete.Blobs) {
		t.Errorf("summary under hangs %+v, healthy %+v", b.Summary, a.Summary)
	}
	if !strings.Contains(log.String(), "storage: trying again") {
		t.Errorf("the log does not say the run waits for the store:\n%s", log.String())
	}
}
