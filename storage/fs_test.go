package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/regsweep/regsweep/storage"
)

// tree makes root/a/{file,dir/inner} and, outside the root, a sentinel tree that
// links inside root point at.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{"a/dir", "a/real", filepath.Join("..", "outside", "sub")} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "a/file"), filepath.Join(root, "a/dir/inner"), filepath.Join(outside, "sentinel"), filepath.Join(outside, "sub/sentinel")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(outside, "a/out")                     // a directory outside the root
	link(filepath.Join(root, "a/dir"), "a/in") // a directory inside it
	link(filepath.Join(outside, "sentinel"), "a/filelink")
	link(outside, "a/real/out")
	return root, outside
}

func sentinels(t *testing.T, outside string) {
	t.Helper()
	for _, f := range []string{"sentinel", "sub/sentinel"} {
		if _, err := os.Stat(filepath.Join(outside, f)); err != nil {
			t.Errorf("sentinel %s: %v", f, err)
		}
	}
}

func TestFSNeverFollowsSymlinks(t *testing.T) {
	root, outside := tree(t)
	fs := storage.NewFilesystem(root)
	ctx := context.Background()

	l, err := fs.List(ctx, "/a")
	var se *storage.SymlinkError
	if !errors.As(err, &se) || !errors.Is(err, storage.ErrSymlink) {
		t.Fatalf("List /a: err = %v, want a SymlinkError", err)
	}
	slices.Sort(l)
	slices.Sort(se.Links)
	if want := []string{"/a/dir", "/a/file", "/a/real"}; !slices.Equal(l, want) {
		t.Errorf("List /a = %v, want %v", l, want)
	}
	if want := []string{"/a/filelink", "/a/in", "/a/out"}; !slices.Equal(se.Links, want) {
		t.Errorf("links = %v, want %v", se.Links, want)
	}
	for _, p := range []string{"/a/out", "/a/out/sub", "/a/in/inner", "/a/filelink", "/a/real/out/sentinel"} {
		if _, err := fs.Stat(ctx, p); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Stat %s: err = %v, want ErrSymlink", p, err)
		}
		if _, err := fs.GetContent(ctx, p); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("GetContent %s: err = %v, want ErrSymlink", p, err)
		}
		if _, err := fs.List(ctx, p); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("List %s: err = %v, want ErrSymlink", p, err)
		}
		if err := fs.Delete(ctx, p); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Delete %s: err = %v, want ErrSymlink", p, err)
		}
	}
	sentinels(t, outside)
	if _, err := os.Lstat(filepath.Join(root, "a/out")); err != nil {
		t.Error("the link itself was deleted; want it left alone")
	}

	// Deleting a real directory that holds a link removes the link, not its target.
	if err := fs.Delete(ctx, "/a/real"); err != nil {
		t.Fatal(err)
	}
	sentinels(t, outside)
	if _, err := os.Lstat(filepath.Join(root, "a/real")); !os.IsNotExist(err) {
		t.Errorf("a/real still there: %v", err)
	}

	// What is not a link behaves as distribution's driver does.
	if b, err := fs.GetContent(ctx, "/a/dir/inner"); err != nil || string(b) != "x" {
		t.Errorf("GetContent /a/dir/inner = %q, %v", b, err)
	}
	fi, err := fs.Stat(ctx, "/a/dir")
	if err != nil || !fi.IsDir() || fi.Path() != "/a/dir" {
		t.Errorf("Stat /a/dir = %+v, %v", fi, err)
	}
	var nf driver.PathNotFoundError
	if _, err := fs.Stat(ctx, "/a/nothing"); !errors.As(err, &nf) {
		t.Errorf("Stat of a missing path: err = %v, want PathNotFoundError", err)
	}
	if err := fs.Delete(ctx, "/a/nothing"); !errors.As(err, &nf) {
		t.Errorf("Delete of a missing path: err = %v, want PathNotFoundError", err)
	}
	if _, err := fs.List(ctx, "/a/file"); !errors.Is(err, storage.ErrNotDir) {
		t.Errorf("List of a file: err = %v, want ErrNotDir", err)
	}
	for _, p := range []string{"/", "/a/../..", "relative"} {
		if err := fs.Delete(ctx, p); err == nil {
			t.Errorf("Delete %q succeeded", p)
		}
	}
	if fs.RemoveEmptyDir("/a/dir") {
		t.Error("RemoveEmptyDir removed a directory that is not empty")
	}
}

// A root given through a symbolic link is the root: the configured path is trusted,
// only what lies below it is not.
func TestFSRootThroughSymlink(t *testing.T) {
	root, _ := tree(t)
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(root, alias); err != nil {
		t.Fatal(err)
	}
	if b, err := storage.NewFilesystem(alias).GetContent(context.Background(), "/a/file"); err != nil || string(b) != "x" {
		t.Errorf("read through a linked root: %q, %v", b, err)
	}
}

// One storage is one identity however its root is spelled, so that the run lock
// and plans keyed by it hold.
func TestIDSameStorageSpelledDifferently(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "srv", "registry")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "srv"), filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	id := func(dir string) string {
		cfg, err := configuration.Parse(strings.NewReader("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + dir + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		return storage.ID(cfg)
	}
	want := id(root)
	for _, spelling := range []string{root + "/", filepath.Join(base, "srv", ".", "registry") + "/.", filepath.Join(base, "alias", "registry"), "srv/registry", "./alias/../srv/registry"} {
		if got := id(spelling); got != want {
			t.Errorf("ID of %q = %q, want %q", spelling, got, want)
		}
	}
	if id(filepath.Join(base, "srv", "other")) == want {
		t.Error("another root has the same ID")
	}
}
