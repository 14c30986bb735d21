package sweep_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// A plan naming a path below a link (made elsewhere, or before the link appeared)
// is refused at the delete: storage.FS checks every path.
func TestSweepLeavesLinkedPathAlone(t *testing.T) {
	root := regtest.Sample(t)
	d := digest.FromString("x")
	upload := "11111111-1111-1111-1111-111111111111"
	outside, check := regtest.OutsideTree(t, "_uploads/"+upload, "_layers/sha256/"+d.Encoded())
	regtest.Symlink(t, outside, regtest.FSPath(root, storage.Root+"/repositories/evil"))
	p := &gc.Plan{Uploads: []gc.UploadItem{{Repository: "evil", ID: upload, Path: regtest.Path(t, storage.Spec{Kind: storage.UploadDir, Repo: "evil", Upload: upload})}},
		LayerLinks: []gc.LinkItem{{Repository: "evil", Digest: d, Path: regtest.Path(t, storage.Spec{Kind: storage.LayerLink, Repo: "evil", Digest: d})}}}
	res, err := sweep.Run(context.Background(), storage.NewFilesystem(root), p)
	if err != nil {
		t.Fatal(err)
	}
	check()
	if res.LeftAlone != 2 || res.DeletedUploads+res.DeletedLayerLinks != 0 {
		t.Errorf("result %+v, want both items left alone", res)
	}
}

// A plan that names anything but what a sweep deletes (the root, a repository, a
// path outside the layout) is refused before anything is deleted.
func TestSweepRefusesPathsOutsideTheGrammar(t *testing.T) {
	root := regtest.Sample(t)
	before := regtest.Files(t, root)
	for _, bad := range []string{"", "/", storage.Root, storage.Root + "/repositories/library", storage.Root + "/blobs/sha256", "relative/path",
		storage.Root + "/repositories/library/debian/_manifests/tags/12/current/link"} {
		p := &gc.Plan{Uploads: []gc.UploadItem{{Repository: "library/debian", ID: "x", Path: bad}}}
		if _, err := sweep.Run(context.Background(), storage.NewFilesystem(root), p); !errors.Is(err, sweep.ErrNotDeletable) {
			t.Errorf("%q: err = %v, want ErrNotDeletable", bad, err)
		}
	}
	if d := cmp.Diff(before, regtest.Files(t, root)); d != "" {
		t.Errorf("refused sweeps changed the storage:\n%s", d)
	}
}
