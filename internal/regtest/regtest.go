// Package regtest is test support: copies of the sample registry, files written
// into a registry tree by the path grammar, and scans and plans of a tree, for the
// tests of every package.
package regtest

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// SampleDir is testdata/sample/registry of this module.
func SampleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "sample", "registry")
}

// Sample copies the sample registry to a temporary directory and returns its root.
func Sample(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(SampleDir())); err != nil {
		t.Fatal(err)
	}
	return root
}

// Age sets every file and directory under root to when.
func Age(t testing.TB, root string, when time.Time) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FSPath maps a driver path into root.
func FSPath(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

// Path is storage.Path, failing the test on an error.
func Path(t testing.TB, s storage.Spec) string {
	t.Helper()
	p, err := storage.Path(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Write writes the file s names under root.
func Write(t testing.TB, root string, s storage.Spec, content []byte) {
	t.Helper()
	p := FSPath(root, Path(t, s))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReadLink returns the digest a link file holds.
func ReadLink(t testing.TB, root string, s storage.Spec) digest.Digest {
	t.Helper()
	b, err := os.ReadFile(FSPath(root, Path(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(b)
}

// ReadBlob returns a blob's data.
func ReadBlob(t testing.TB, root string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(FSPath(root, Path(t, storage.Spec{Kind: storage.BlobData, Digest: d})))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ReadJSON decodes a blob's data into v.
func ReadJSON(t testing.TB, root string, d digest.Digest, v any) {
	t.Helper()
	if err := json.Unmarshal(ReadBlob(t, root, d), v); err != nil {
		t.Fatal(err)
	}
}

// PutBlob stores content in the blob store and, when repo is set, links it into
// repo, as a push would.
func PutBlob(t testing.TB, root, repo string, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	Write(t, root, storage.Spec{Kind: storage.BlobData, Digest: d}, content)
	if repo != "" {
		Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: repo, Digest: d}, []byte(d))
	}
	return d
}

// PutManifest stores a manifest blob, its revision link and, when tag is set, the
// tag and its history entry.
func PutManifest(t testing.TB, root, repo, tag string, content []byte) digest.Digest {
	t.Helper()
	d := PutBlob(t, root, "", content)
	Write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: repo, Digest: d}, []byte(d))
	if tag != "" {
		Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: tag}, []byte(d))
		Write(t, root, storage.Spec{Kind: storage.TagIndexLink, Repo: repo, Tag: tag, Digest: d}, []byte(d))
	}
	return d
}

// Files lists every regular file under root, relative to it, sorted.
func Files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// Plan scans root (through storage.FS, as regsweep gc does) into a new index and
// plans it with no grace, an hour after now, then opts.
func Plan(t testing.TB, root string, build []graph.BuildOption, opts ...gc.Option) *gc.Plan {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(root), idx, append([]graph.BuildOption{graph.WithWorkers(4)}, build...)...); err != nil {
		t.Fatal(err)
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, g, append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// OutsideTree makes a directory outside every storage root with files in
// subdirectories, and returns it with a function that fails the test if any of
// its files is gone.
func OutsideTree(t testing.TB, subdirs ...string) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	var all []string
	for _, s := range subdirs {
		for _, f := range []string{"startedat", "data", "link"} {
			p := filepath.Join(dir, s, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			content := "sentinel"
			if f == "startedat" {
				content = time.Now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			all = append(all, p)
		}
	}
	return dir, func() {
		t.Helper()
		for _, p := range all {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("outside the storage root, %s was deleted", p)
			}
		}
	}
}

// Symlink makes link point at target, creating link's directory.
func Symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// CopyTree copies the registry tree at src to dst with the files' times: a tag's
// time is its push time, which retention policies rank by.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Repository opens repository name of a registry made with distribution's storage
// API.
func Repository(t testing.TB, ns distribution.Namespace, name string) distribution.Repository {
	t.Helper()
	named, err := reference.WithName(name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ns.Repository(context.Background(), named)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
