package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// A batch deletes blob data and layer links under the driver's root directory in
// one request, and nothing beside them; it refuses other paths before deleting
// anything; a rerun of the same batch is no error.
func TestS3BatchDeletesFilesInOneRequest(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/prefix/of/the/registry")
	b, ok := storage.NewBatcher(drv)
	if !ok {
		t.Fatal("no batcher for distribution's s3 driver")
	}
	n, ao := storage.Concurrency(drv.Name(), 0)
	if _, ok := storage.NewBatcher(storage.NewPatient(storage.NewAdaptive(drv, *ao), storage.PatientOptions{})); !ok || n == 0 {
		t.Fatal("no batcher through the adaptive limit and patience, as regsweep gc wraps the driver")
	}
	path := func(s storage.Spec) string {
		p, err := storage.Path(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gone, stay []string
	for i := range 1200 {
		d := digest.Digest(fmt.Sprintf("sha256:%064x", i))
		files := []string{path(storage.Spec{Kind: storage.BlobData, Digest: d}), path(storage.Spec{Kind: storage.LayerLink, Repo: "team/app", Digest: d})}
		if i%3 == 0 {
			files = append(files, path(storage.Spec{Kind: storage.RevisionLink, Repo: "team/app", Digest: d}))
			stay = append(stay, files...)
		} else {
			gone = append(gone, files...)
		}
		for _, f := range files {
			if err := drv.PutContent(ctx, f, []byte(d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.DeleteFiles(ctx, append([]string{stay[2]}, gone[:10]...)); err == nil {
		t.Error("a batch with a revision link in it was accepted")
	}
	if err := b.DeleteFiles(ctx, gone); err == nil {
		t.Errorf("a batch of %d files was accepted: S3 takes at most %d", len(gone), storage.BatchMax)
	}
	for _, f := range gone[:10] {
		if _, err := drv.Stat(ctx, f); err != nil {
			t.Fatalf("%s is gone after a refused batch: %v", f, err)
		}
	}
	before := s3.Requests()
	for start := 0; start < len(gone); start += storage.BatchMax {
		if err := b.DeleteFiles(ctx, gone[start:min(start+storage.BatchMax, len(gone))]); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := s3.Requests()-before, int64((len(gone)+storage.BatchMax-1)/storage.BatchMax); n != want {
		t.Errorf("%d files deleted in %d requests, want %d", len(gone), n, want)
	}
	for _, f := range gone {
		if _, err := drv.Stat(ctx, f); !errors.As(err, new(driver.PathNotFoundError)) {
			t.Fatalf("%s still there after its batch: %v", f, err)
		}
	}
	for _, f := range stay {
		if _, err := drv.Stat(ctx, f); err != nil {
			t.Fatalf("%s, not in any batch, is gone: %v", f, err)
		}
	}
	if err := b.DeleteFiles(ctx, gone[:storage.BatchMax]); err != nil {
		t.Errorf("a rerun of a deleted batch: %v", err)
	}
	if _, ok := storage.NewBatcher(storage.NewFilesystem(t.TempDir())); ok {
		t.Error("a batcher for the filesystem")
	}
}
