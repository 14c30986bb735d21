package storage

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The component-by-component fallback refuses links as openat2 does.
func TestOpenBeneathWithoutOpenat2(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d/e/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "d"), filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "d/e/f"), filepath.Join(root, "d/fl")); err != nil {
		t.Fatal(err)
	}
	dir, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	for _, with := range []bool{true, false} {
		noOpenat2.Store(!with)
		fd, err := openBeneath(dir, "d/e/f", unix.O_RDONLY)
		if err != nil {
			t.Fatalf("openat2=%v: open d/e/f: %v", with, err)
		}
		unix.Close(fd)
		for _, p := range []string{"l/e/f", "l", "d/fl"} {
			if fd, err := openBeneath(dir, p, unix.O_RDONLY); err != unix.ELOOP {
				unix.Close(fd)
				t.Errorf("openat2=%v: open %s: err = %v, want ELOOP", with, p, err)
			}
		}
	}
	noOpenat2.Store(false)
}
