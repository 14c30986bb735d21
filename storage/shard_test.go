package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// Every shard scanned on its own finds what one Scan finds: on a filesystem (listed
// directory by directory) and on S3 (walked), with stray files, an upload, nested
// repositories, a repository that is also a namespace and symbolic links among them;
// with repositories split into shards at the top level only, a little, and as far as
// they go.
func TestShardsFindWhatScanFinds(t *testing.T) {
	ctx := context.Background()
	root := regtest.Sample(t)
	repos := filepath.Join(root, "docker/registry/v2/repositories")
	regtest.Write(t, root, storage.Spec{Kind: storage.UploadStartedAt, Repo: "team/app/web", Upload: "u1"}, []byte("2026-01-01T00:00:00Z"))
	// team/app becomes a repository of its own above team/app/web and team/app/api,
	// with a tag and a layer link but no revisions: that it has _manifests is seen
	// from the directory alone.
	revs, err := os.ReadDir(filepath.Join(repos, "library/debian/_manifests/revisions/sha256"))
	if err != nil || len(revs) == 0 {
		t.Fatalf("sample revisions: %v", err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, revs[0].Name())
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app", Digest: d}, []byte(d))
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app", Tag: "v1"}, []byte(d))
	for p, b := range map[string]string{
		"docker/registry/v2/blobs/sha256/stray":          "x",
		"docker/registry/v2/repositories/NOTES":          "a stray file among the top-level directories",
		"docker/registry/v2/repositories/library/README": "a stray file in a namespace",
		"docker/registry/v2/repositories/team/app/_junk": "a stray file in a repository that is also a namespace",
	} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s3root := t.TempDir()
	regtest.CopyTree(t, root, s3root)
	regtest.Symlink(t, filepath.Join(repos, "team"), filepath.Join(repos, "alias"))
	regtest.Symlink(t, filepath.Join(repos, "library/debian"), filepath.Join(repos, "mirror/deb"))
	_, s3 := benchenv.StartS3(t, "/")
	if err := benchenv.PutTree(ctx, s3, s3root); err != nil {
		t.Fatal(err)
	}
	// Only an object store has a file and a directory of one name: a stray named
	// like a repository's data directory. (Where a repository is also a namespace,
	// such a name keeps it from being split: TestScanEarlyRepositoryWalks.)
	if err := s3.PutContent(ctx, "/docker/registry/v2/repositories/library/debian/_layers", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for name, drv := range map[string]driver.StorageDriver{"filesystem": storage.NewFilesystem(root), "s3": s3} {
		var want []string
		err := storage.Scan(ctx, drv, func(e storage.Entry) error { want = append(want, entryString(e)); return nil }, storage.WithTagTimes(false))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		if len(want) < 20 {
			t.Errorf("%s: Scan found only %d entries", name, len(want))
		}
		strays := []string{"NOTES", "library/README", "team/app/_junk"}
		if name == "s3" {
			strays = append(strays, "library/debian/_layers")
		}
		for _, p := range strays {
			if !slices.ContainsFunc(want, func(e string) bool { return strings.Contains(e, "/repositories/"+p+" ") }) {
				t.Errorf("%s: Scan did not report the stray file %s", name, p)
			}
		}
		for _, n := range []int{1, 5, storage.DefaultRepoShards} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				var got []string
				add := func(e storage.Entry) error { got = append(got, entryString(e)); return nil }
				// Where the split goes furthest, one listing at a time: the same shards.
				workers := 16
				if n == storage.DefaultRepoShards {
					workers = 1
				}
				shards, err := storage.Shards(ctx, drv, add, storage.WithRepoShards(n), storage.WithShardWorkers(workers))
				if err != nil {
					t.Fatal(err)
				}
				blobShards, own := 0, 0
				for _, s := range shards {
					if s.Blobs {
						blobShards++
					}
					if s.Own {
						own++
					}
					if err := storage.ScanShard(ctx, drv, s, 4, add); err != nil {
						t.Fatal(err)
					}
				}
				slices.Sort(got)
				sameEntries(t, "the shards", got, "Scan", want)
				repoShards := len(shards) - blobShards
				if blobShards < 2 || repoShards < min(n, 3) {
					t.Errorf("%d shards, %d of the blob store: want several of each", len(shards), blobShards)
				}
				if n == storage.DefaultRepoShards && own != 1 {
					t.Errorf("%d shards of a repository's own directories, want 1 (team/app): %v", own, shards)
				}
			})
		}
	}
}

func entryString(e storage.Entry) string {
	e.ReadAt = e.ReadAt.UTC()
	return fmt.Sprintf("%d %s %s %s %s %s %d %d %s %s %v %s %s %v %v",
		e.Kind, e.Repo, e.Tag, e.Upload, e.Digest, e.Target, e.Size, e.ModTime.UnixNano(), e.StartedAt.UTC(), e.Path, e.HasManifests, e.Warning, e.WarnKind, e.Keep, e.Blocks)
}

// sameEntries fails t unless the two sorted lists of entries, found by what a and b
// name, are the same.
func sameEntries(t *testing.T, a string, got []string, b string, want []string) {
	t.Helper()
	for _, d := range diff(got, want) {
		t.Errorf("only %s found: %s", a, d)
	}
	for _, d := range diff(want, got) {
		t.Errorf("only %s found: %s", b, d)
	}
	if len(got) != len(want) {
		t.Errorf("%s found %d entries, %s %d", a, len(got), b, len(want))
	}
}

// diff returns what a holds that b does not (both sorted).
func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); !ok {
			out = append(out, s)
		}
	}
	return out
}

// A registry whose blob store is missing (an unmounted volume under the tree) is
// reported as such by Scan and by Shards; with no registry at all, both refuse.
func TestScanAndShardsReportMissingBlobStore(t *testing.T) {
	ctx := context.Background()
	root := regtest.Sample(t)
	if err := os.RemoveAll(filepath.Join(root, "docker/registry/v2/blobs")); err != nil {
		t.Fatal(err)
	}
	drv := storage.NewFilesystem(root)
	count := func(n *int) func(storage.Entry) error {
		return func(e storage.Entry) error {
			if e.Kind == storage.KindWarning && e.Path == "/docker/registry/v2/blobs" {
				*n++
			}
			return nil
		}
	}
	var scanned, sharded int
	if err := storage.Scan(ctx, drv, count(&scanned)); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Shards(ctx, drv, count(&sharded)); err != nil {
		t.Fatal(err)
	}
	if scanned != 1 || sharded != 1 {
		t.Errorf("missing blob store reported %d times by Scan, %d by Shards; want once each", scanned, sharded)
	}
	empty := storage.NewFilesystem(t.TempDir())
	if err := storage.Scan(ctx, empty, count(new(int))); !errors.Is(err, storage.ErrNoRegistry) {
		t.Errorf("Scan of an empty tree: %v, want ErrNoRegistry", err)
	}
	if _, err := storage.Shards(ctx, empty, count(new(int))); !errors.Is(err, storage.ErrNoRegistry) {
		t.Errorf("Shards of an empty tree: %v, want ErrNoRegistry", err)
	}
}

// A repository that is also a namespace gets a shard of its own directories. On S3 a
// stray file named like one of them, put after the split, is listed twice (a file
// and a prefix): the shard's scan reports it once and walks the directory once.
func TestShardOwnStrayAfterSplit(t *testing.T) {
	ctx := context.Background()
	root := regtest.Sample(t)
	revs, err := os.ReadDir(filepath.Join(root, "docker/registry/v2/repositories/library/debian/_manifests/revisions/sha256"))
	if err != nil || len(revs) == 0 {
		t.Fatalf("sample revisions: %v", err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, revs[0].Name())
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app", Digest: d}, []byte(d))
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app", Tag: "v1"}, []byte(d))
	_, s3 := benchenv.StartS3(t, "/")
	if err := benchenv.PutTree(ctx, s3, root); err != nil {
		t.Fatal(err)
	}
	shards, err := storage.Shards(ctx, s3, func(storage.Entry) error { return nil }, storage.WithRepoShards(storage.DefaultRepoShards))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(shards, func(s storage.Shard) bool { return s.Own && strings.HasSuffix(s.Path, "/repositories/team/app") })
	if i < 0 {
		t.Fatalf("no shard of team/app's own directories: %v", shards)
	}
	scan := func() []string {
		var got []string
		if err := storage.ScanShard(ctx, s3, shards[i], 4, func(e storage.Entry) error { got = append(got, entryString(e)); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	before := scan()
	stray := "/docker/registry/v2/repositories/team/app/_layers"
	if err := s3.PutContent(ctx, stray, []byte("x")); err != nil {
		t.Fatal(err)
	}
	after := scan()
	var reports []string
	after = slices.DeleteFunc(after, func(e string) bool {
		if strings.Contains(e, stray+" ") {
			reports = append(reports, e)
			return true
		}
		return false
	})
	if len(reports) != 1 {
		t.Errorf("the stray %s reported %d times: %v", stray, len(reports), reports)
	}
	sameEntries(t, "after the stray", after, "before", before)
}
