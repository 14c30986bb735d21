package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/regsweep/regsweep/graph"
)

// smallDisk mounts a tmpfs of size bytes for the index, or skips the test where
// this process may not mount (it needs root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs for the index (%v): needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// An index disk too small: a clear error saying what is free and what is needed,
// before badger writes through a memory map into a full disk (a SIGBUS).
func TestIndexDiskFull(t *testing.T) {
	disk := smallDisk(t, "3m")
	cfg := sampleConfig(t)
	for _, args := range [][]string{{"gc", cfg, "-q", "--registry-url", "none"}, {"gc", cfg, "-d", "-q"}, {"scan", cfg, "-q"}} {
		_, err := run(t, append(args, "--index", filepath.Join(disk, "idx"))...)
		if !errors.Is(err, graph.ErrDiskFull) || !strings.Contains(err.Error(), "free at") || !strings.Contains(err.Error(), "needs about") {
			t.Errorf("%v: err = %v, want the index disk too full, with free and needed space", args, err)
		}
	}
}

// The disk fills up during a real sweep: it stops cleanly, and once there is room
// again the same command finishes it.
func TestIndexDiskFillsDuringSweep(t *testing.T) {
	disk := smallDisk(t, "80m")
	cfg := sampleConfig(t)
	dir := filepath.Join(disk, "idx")
	filler := filepath.Join(disk, "filler")
	var once sync.Once
	testBeforeDelete = func(string) error {
		once.Do(func() {
			// Leave 16 MiB: less than the index's working space.
			var st syscall.Statfs_t
			syscall.Statfs(disk, &st)
			free := int64(st.Bavail) * st.Bsize
			if err := os.WriteFile(filler, make([]byte, free-16<<20), 0o644); err != nil {
				t.Error(err)
			}
		})
		return nil
	}
	_, err := run(t, "gc", cfg, "-m", "-q", "--index", dir, "--registry-url", "none")
	testBeforeDelete = nil
	if !errors.Is(err, graph.ErrDiskFull) {
		t.Fatalf("sweep on a disk that fills: err = %v, want ErrDiskFull", err)
	}
	os.Remove(filler)
	if _, err := run(t, "gc", cfg, "-m", "-q", "--index", dir, "--registry-url", "none"); err != nil {
		t.Fatalf("the rerun: %v", err)
	}
	var rep struct {
		Summary struct{ DeleteBlobs, DeleteLayerLinks, DeleteManifests int }
	}
	out := mustRun(t, "gc", cfg, "-m", "-d", "-q", "-o", "json", "--index", t.TempDir())
	if err := jsonUnmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.DeleteBlobs+s.DeleteLayerLinks+s.DeleteManifests != 0 {
		t.Errorf("after the rerun there is still garbage: %+v", s)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
