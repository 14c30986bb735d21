package storage_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/manifest/schema2"
	dstorage "github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/storage"
)

// Literal digests, so that expected paths are spelled out in full and do not
// depend on any code under test.
const (
	// sha256("hello")
	helloHex  = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	helloDgst = digest.Digest("sha256:" + helloHex)
	// sha256("")
	emptyHex  = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	emptyDgst = digest.Digest("sha256:" + emptyHex)
	// sha512("hello")
	hello512Hex  = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
	hello512Dgst = digest.Digest("sha512:" + hello512Hex)

	v2 = "/docker/registry/v2"
)

type pathCase struct {
	name string
	spec storage.Spec
	want string
}

// validCases covers every Kind, with flat and nested repository names.
var validCases = []pathCase{
	{"blob data", storage.Spec{Kind: storage.BlobData, Digest: helloDgst},
		v2 + "/blobs/sha256/2c/" + helloHex + "/data"},
	{"blob dir", storage.Spec{Kind: storage.BlobDir, Digest: helloDgst},
		v2 + "/blobs/sha256/2c/" + helloHex},
	{"blob data empty digest", storage.Spec{Kind: storage.BlobData, Digest: emptyDgst},
		v2 + "/blobs/sha256/e3/" + emptyHex + "/data"},
	{"blob data sha512", storage.Spec{Kind: storage.BlobData, Digest: hello512Dgst},
		v2 + "/blobs/sha512/9b/" + hello512Hex + "/data"},

	{"revision link", storage.Spec{Kind: storage.RevisionLink, Repo: "library/ubuntu", Digest: helloDgst},
		v2 + "/repositories/library/ubuntu/_manifests/revisions/sha256/" + helloHex + "/link"},
	{"revision link nested", storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/api", Digest: helloDgst},
		v2 + "/repositories/team/app/api/_manifests/revisions/sha256/" + helloHex + "/link"},
	{"revision link single component", storage.Spec{Kind: storage.RevisionLink, Repo: "busybox", Digest: emptyDgst},
		v2 + "/repositories/busybox/_manifests/revisions/sha256/" + emptyHex + "/link"},
	{"revision dir", storage.Spec{Kind: storage.RevisionDir, Repo: "team/app/api", Digest: helloDgst},
		v2 + "/repositories/team/app/api/_manifests/revisions/sha256/" + helloHex},

	{"tag current link", storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/ubuntu", Tag: "latest"},
		v2 + "/repositories/library/ubuntu/_manifests/tags/latest/current/link"},
	{"tag current link nested", storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/api", Tag: "v1.2.3-rc.1_build"},
		v2 + "/repositories/team/app/api/_manifests/tags/v1.2.3-rc.1_build/current/link"},
	{"tag dir", storage.Spec{Kind: storage.TagDir, Repo: "team/app/api", Tag: "v1.2.3-rc.1_build"},
		v2 + "/repositories/team/app/api/_manifests/tags/v1.2.3-rc.1_build"},
	{"tag index link", storage.Spec{Kind: storage.TagIndexLink, Repo: "team/app/api", Tag: "v1", Digest: helloDgst},
		v2 + "/repositories/team/app/api/_manifests/tags/v1/index/sha256/" + helloHex + "/link"},
	{"tag index dir", storage.Spec{Kind: storage.TagIndexDir, Repo: "team/app/api", Tag: "v1", Digest: helloDgst},
		v2 + "/repositories/team/app/api/_manifests/tags/v1/index/sha256/" + helloHex},
	{"tag index dir flat", storage.Spec{Kind: storage.TagIndexDir, Repo: "busybox", Tag: "latest", Digest: emptyDgst},
		v2 + "/repositories/busybox/_manifests/tags/latest/index/sha256/" + emptyHex},

	{"layer link", storage.Spec{Kind: storage.LayerLink, Repo: "library/ubuntu", Digest: helloDgst},
		v2 + "/repositories/library/ubuntu/_layers/sha256/" + helloHex + "/link"},
	{"layer link nested", storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: emptyDgst},
		v2 + "/repositories/team/app/api/_layers/sha256/" + emptyHex + "/link"},
	{"layer dir", storage.Spec{Kind: storage.LayerDir, Repo: "team/app/api", Digest: helloDgst},
		v2 + "/repositories/team/app/api/_layers/sha256/" + helloHex},

	{"upload startedat", storage.Spec{Kind: storage.UploadStartedAt, Repo: "team/app/api", Upload: "0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f"},
		v2 + "/repositories/team/app/api/_uploads/0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f/startedat"},
	{"upload data", storage.Spec{Kind: storage.UploadData, Repo: "library/ubuntu", Upload: "0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f"},
		v2 + "/repositories/library/ubuntu/_uploads/0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f/data"},
	{"upload hash state", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app/api", Upload: "0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f", Rest: "sha256/1048576"},
		v2 + "/repositories/team/app/api/_uploads/0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f/hashstates/sha256/1048576"},
	{"upload hash state offset 0", storage.Spec{Kind: storage.UploadHashState, Repo: "busybox", Upload: "u1", Rest: "sha256/0"},
		v2 + "/repositories/busybox/_uploads/u1/hashstates/sha256/0"},
	{"upload dir", storage.Spec{Kind: storage.UploadDir, Repo: "team/app/api", Upload: "0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f"},
		v2 + "/repositories/team/app/api/_uploads/0b5a2c4e-7d1f-4d2a-9f0e-3c6b8a1d2e4f"},

	{"repository manifests", storage.Spec{Kind: storage.RepoDataDir, Repo: "team/app/api", Rest: "_manifests"},
		v2 + "/repositories/team/app/api/_manifests"},
	{"repository layers", storage.Spec{Kind: storage.RepoDataDir, Repo: "busybox", Rest: "_layers"},
		v2 + "/repositories/busybox/_layers"},
	{"repository uploads", storage.Spec{Kind: storage.RepoDataDir, Repo: "team/app", Rest: "_uploads"},
		v2 + "/repositories/team/app/_uploads"},
}

func TestPathAllKinds(t *testing.T) {
	seen := map[storage.Kind]bool{}
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storage.Path(tc.spec)
			if err != nil {
				t.Fatalf("Path(%+v): %v", tc.spec, err)
			}
			if got != tc.want {
				t.Errorf("Path(%+v)\n got %s\nwant %s", tc.spec, got, tc.want)
			}
		})
		seen[tc.spec.Kind] = true
	}
	for k := storage.BlobData; k <= storage.RepoDataDir; k++ {
		if !seen[k] {
			t.Errorf("kind %v (%d) has no case in validCases", k, k)
		}
	}
}

// TestPathMatchesDistributionDoc spells out, character for character, paths from the
// comment block of distribution v3.1.2 registry/storage/paths.go, with <root> being
// "/docker/registry/".
func TestPathMatchesDistributionDoc(t *testing.T) {
	const root = "/docker/registry/"
	cases := []struct {
		spec storage.Spec
		doc  string // pattern from distribution's comment block
		want string
	}{
		{
			storage.Spec{Kind: storage.BlobData, Digest: helloDgst},
			"<root>/v2/blobs/<algorithm>/<first two hex bytes of digest>/<hex digest>/data",
			root + "v2/blobs/sha256/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/data",
		},
		{
			storage.Spec{Kind: storage.BlobDir, Digest: helloDgst},
			"<root>/v2/blobs/<algorithm>/<first two hex bytes of digest>/<hex digest>",
			root + "v2/blobs/sha256/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
		},
		{
			storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/api", Digest: helloDgst},
			"<root>/v2/repositories/<name>/_manifests/revisions/<algorithm>/<hex digest>/link",
			root + "v2/repositories/team/app/api/_manifests/revisions/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/link",
		},
		{
			storage.Spec{Kind: storage.TagDir, Repo: "team/app/api", Tag: "v1"},
			"<root>/v2/repositories/<name>/_manifests/tags/<tag>/",
			root + "v2/repositories/team/app/api/_manifests/tags/v1",
		},
		{
			storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/api", Tag: "v1"},
			"<root>/v2/repositories/<name>/_manifests/tags/<tag>/current/link",
			root + "v2/repositories/team/app/api/_manifests/tags/v1/current/link",
		},
		{
			storage.Spec{Kind: storage.TagIndexLink, Repo: "team/app/api", Tag: "v1", Digest: helloDgst},
			"<root>/v2/repositories/<name>/_manifests/tags/<tag>/index/<algorithm>/<hex digest>/link",
			root + "v2/repositories/team/app/api/_manifests/tags/v1/index/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/link",
		},
		{
			storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: helloDgst},
			"<root>/v2/repositories/<name>/_layers/<algorithm>/<hex digest>/link",
			root + "v2/repositories/team/app/api/_layers/sha256/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/link",
		},
		{
			storage.Spec{Kind: storage.UploadData, Repo: "team/app/api", Upload: "abc"},
			"<root>/v2/repositories/<name>/_uploads/<id>/data",
			root + "v2/repositories/team/app/api/_uploads/abc/data",
		},
		{
			storage.Spec{Kind: storage.UploadStartedAt, Repo: "team/app/api", Upload: "abc"},
			"<root>/v2/repositories/<name>/_uploads/<id>/startedat",
			root + "v2/repositories/team/app/api/_uploads/abc/startedat",
		},
		{
			storage.Spec{Kind: storage.UploadHashState, Repo: "team/app/api", Upload: "abc", Rest: "sha256/42"},
			"<root>/v2/repositories/<name>/_uploads/<id>/hashstates/<algorithm>/<offset>",
			root + "v2/repositories/team/app/api/_uploads/abc/hashstates/sha256/42",
		},
	}
	for _, tc := range cases {
		got, err := storage.Path(tc.spec)
		if err != nil {
			t.Errorf("Path(%+v): %v", tc.spec, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.doc, got, tc.want)
		}
	}
	if storage.Root+"/" != root+"v2/" {
		t.Errorf("Root = %q, distribution writes under %q", storage.Root, root+"v2")
	}
}

// TestPathMatchesDistributionWrites pushes through distribution's own storage code
// (in-memory driver) and checks that every file it writes parses, and that Path
// spells each one back identically.
func TestPathMatchesDistributionWrites(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	ns, err := dstorage.NewRegistry(ctx, drv, dstorage.EnableDelete)
	if err != nil {
		t.Fatal(err)
	}
	named, err := reference.WithName("team/app/api")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		t.Fatal(err)
	}
	bs := repo.Blobs(ctx)
	cfg, err := bs.Put(ctx, schema2.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux"}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MediaType = schema2.MediaTypeImageConfig
	layer, err := bs.Put(ctx, schema2.MediaTypeLayer, []byte("layer content"))
	if err != nil {
		t.Fatal(err)
	}
	layer.MediaType = schema2.MediaTypeLayer
	m, err := schema2.FromStruct(schema2.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: schema2.MediaTypeManifest,
		Config:    cfg,
		Layers:    []v1.Descriptor{layer},
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ms.Put(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := m.Payload()
	if err := repo.Tags(ctx).Tag(ctx, "v1", v1.Descriptor{MediaType: schema2.MediaTypeManifest, Digest: md, Size: int64(len(payload))}); err != nil {
		t.Fatal(err)
	}
	// An upload left in progress: data, startedat and a hash state.
	w, err := bs.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial upload")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	uploadID := w.ID()

	var files []string
	err = drv.Walk(ctx, "/", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			files = append(files, fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)

	var got []string
	kinds := map[storage.Kind]int{}
	for _, f := range files {
		s, err := storage.Parse(f)
		if err != nil {
			t.Errorf("Parse(%q) of a file distribution wrote: %v", f, err)
			continue
		}
		kinds[s.Kind]++
		back, err := storage.Path(s)
		if err != nil {
			t.Errorf("Path(Parse(%q)) = %v", f, err)
			continue
		}
		if back != f {
			t.Errorf("Path(Parse(%q)) = %q", f, back)
		}
		got = append(got, f)
	}

	// The files we know distribution must have written, spelled by Path.
	mustPath := func(s storage.Spec) string {
		t.Helper()
		p, err := storage.Path(s)
		if err != nil {
			t.Fatalf("Path(%+v): %v", s, err)
		}
		return p
	}
	const repoName = "team/app/api"
	want := []string{
		mustPath(storage.Spec{Kind: storage.BlobData, Digest: cfg.Digest}),
		mustPath(storage.Spec{Kind: storage.BlobData, Digest: layer.Digest}),
		mustPath(storage.Spec{Kind: storage.BlobData, Digest: md}),
		mustPath(storage.Spec{Kind: storage.LayerLink, Repo: repoName, Digest: cfg.Digest}),
		mustPath(storage.Spec{Kind: storage.LayerLink, Repo: repoName, Digest: layer.Digest}),
		mustPath(storage.Spec{Kind: storage.RevisionLink, Repo: repoName, Digest: md}),
		mustPath(storage.Spec{Kind: storage.TagCurrentLink, Repo: repoName, Tag: "v1"}),
		mustPath(storage.Spec{Kind: storage.TagIndexLink, Repo: repoName, Tag: "v1", Digest: md}),
		mustPath(storage.Spec{Kind: storage.UploadData, Repo: repoName, Upload: uploadID}),
		mustPath(storage.Spec{Kind: storage.UploadStartedAt, Repo: repoName, Upload: uploadID}),
	}
	gotSet := map[string]bool{}
	for _, f := range got {
		gotSet[f] = true
	}
	for _, w := range want {
		if !gotSet[w] {
			t.Errorf("distribution did not write %s; it wrote:\n%s", w, strings.Join(files, "\n"))
		}
	}
	if kinds[storage.UploadHashState] == 0 {
		t.Errorf("no upload hash state among the files distribution wrote:\n%s", strings.Join(files, "\n"))
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := storage.Path(tc.spec)
			if err != nil {
				t.Fatalf("Path: %v", err)
			}
			got, err := storage.Parse(p)
			if err != nil {
				t.Fatalf("Parse(%q): %v", p, err)
			}
			if diff := cmp.Diff(tc.spec, got); diff != "" {
				t.Errorf("Parse(Path(s)) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	repo := v2 + "/repositories/team/app"
	cases := []struct{ name, path string }{
		{"empty", ""},
		{"root", v2},
		{"blobs dir", v2 + "/blobs"},
		{"repositories dir", v2 + "/repositories"},
		{"outside root", "/var/lib/registry/blobs/sha256/2c/" + helloHex + "/data"},
		{"other version", "/docker/registry/v1/blobs/sha256/2c/" + helloHex + "/data"},
		{"relative", "docker/registry/v2/blobs/sha256/2c/" + helloHex + "/data"},
		{"root prefix without slash", v2 + "blobs/sha256/2c/" + helloHex + "/data"},
		{"trailing slash", v2 + "/blobs/sha256/2c/" + helloHex + "/data/"},
		{"double slash", v2 + "/blobs/sha256//2c/" + helloHex + "/data"},
		{"unclean dotdot", v2 + "/repositories/team/../app/_layers/sha256/" + helloHex + "/link"},
		{"unclean dotdot escaping", v2 + "/repositories/../blobs/sha256/2c/" + helloHex + "/data"},
		{"unclean dot", v2 + "/blobs/sha256/./2c/" + helloHex + "/data"},

		{"blob wrong prefix", v2 + "/blobs/sha256/2d/" + helloHex + "/data"},
		{"blob wrong prefix dir", v2 + "/blobs/sha256/ab/" + helloHex},
		{"blob three-char prefix", v2 + "/blobs/sha256/2cf/" + helloHex + "/data"},
		{"blob short hex", v2 + "/blobs/sha256/2c/2cf24dba/data"},
		{"blob uppercase hex", v2 + "/blobs/sha256/2C/" + strings.ToUpper(helloHex) + "/data"},
		{"blob non-hex", v2 + "/blobs/sha256/zz/" + strings.Repeat("z", 64) + "/data"},
		{"blob unknown algorithm", v2 + "/blobs/md5/2c/" + helloHex + "/data"},
		{"blob sha512 with sha256 length", v2 + "/blobs/sha512/2c/" + helloHex + "/data"},
		{"blob not data", v2 + "/blobs/sha256/2c/" + helloHex + "/link"},
		{"blob too deep", v2 + "/blobs/sha256/2c/" + helloHex + "/data/x"},
		{"blob prefix dir", v2 + "/blobs/sha256/2c"},
		{"blob algorithm dir", v2 + "/blobs/sha256"},

		{"no name before _manifests", v2 + "/repositories/_manifests/revisions/sha256/" + helloHex + "/link"},
		{"no name before _layers", v2 + "/repositories/_layers/sha256/" + helloHex + "/link"},
		{"repository without underscore dir", repo},
		{"repository plain file", repo + "/README"},
		{"unknown underscore dir", repo + "/_tags/latest/current/link"},
		{"revisions dir", repo + "/_manifests/revisions"},
		{"revisions alg dir", repo + "/_manifests/revisions/sha256"},
		{"revision short hex", repo + "/_manifests/revisions/sha256/2cf24dba/link"},
		{"revision unknown algorithm", repo + "/_manifests/revisions/sha1/" + helloHex + "/link"},
		{"revision not link", repo + "/_manifests/revisions/sha256/" + helloHex + "/data"},
		{"revision too deep", repo + "/_manifests/revisions/sha256/" + helloHex + "/link/x"},
		{"tags dir", repo + "/_manifests/tags"},
		{"tag current dir", repo + "/_manifests/tags/latest/current"},
		{"tag current not link", repo + "/_manifests/tags/latest/current/data"},
		{"tag index dir", repo + "/_manifests/tags/latest/index"},
		{"tag index alg dir", repo + "/_manifests/tags/latest/index/sha256"},
		{"tag index bad hex", repo + "/_manifests/tags/latest/index/sha256/xyz/link"},
		{"tag index not link", repo + "/_manifests/tags/latest/index/sha256/" + helloHex + "/data"},
		{"tag unknown subdir", repo + "/_manifests/tags/latest/other/link"},
		{"layer alg dir", repo + "/_layers/sha256"},
		{"layer bad hex", repo + "/_layers/sha256/" + helloHex[:63] + "/link"},
		{"layer unknown algorithm", repo + "/_layers/sha999/" + helloHex + "/link"},
		{"layer not link", repo + "/_layers/sha256/" + helloHex + "/data"},
		{"unknown upload file", repo + "/_uploads/u1/junk"},
		{"upload data too deep", repo + "/_uploads/u1/data/x"},
		{"upload hashstates dir", repo + "/_uploads/u1/hashstates"},
		// Spec.Rest is documented as "<alg>/<offset>" and distribution writes
		// hashstates/<algorithm>/<offset>; the algorithm directory alone and anything
		// deeper are not files of the layout.
		{"upload hashstates alg dir", repo + "/_uploads/u1/hashstates/sha256"},
		{"upload hashstates too deep", repo + "/_uploads/u1/hashstates/sha256/0/x"},
		{"upload hashstates non-numeric offset", repo + "/_uploads/u1/hashstates/sha256/abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := storage.Parse(tc.path)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", tc.path, s)
			}
			if !errors.Is(err, storage.ErrBadPath) {
				t.Errorf("Parse(%q) error %v does not wrap ErrBadPath", tc.path, err)
			}
			if s != (storage.Spec{}) {
				t.Errorf("Parse(%q) returned non-zero spec %+v with error", tc.path, s)
			}
		})
	}
}

func TestPathRejects(t *testing.T) {
	cases := []struct {
		name string
		spec storage.Spec
	}{
		{"unknown kind", storage.Spec{Kind: storage.KindUnknown, Digest: helloDgst}},
		{"kind out of range", storage.Spec{Kind: storage.Kind(99), Digest: helloDgst}},
		{"blob empty digest", storage.Spec{Kind: storage.BlobData}},
		{"blob invalid digest", storage.Spec{Kind: storage.BlobData, Digest: "sha256:2cf24dba"}},
		{"blob dir invalid digest", storage.Spec{Kind: storage.BlobDir, Digest: digest.Digest("sha256:" + strings.ToUpper(helloHex))}},
		{"blob unknown algorithm", storage.Spec{Kind: storage.BlobData, Digest: digest.Digest("md5:" + helloHex)}},
		{"blob digest without algorithm", storage.Spec{Kind: storage.BlobData, Digest: helloHex}},

		{"revision empty repo", storage.Spec{Kind: storage.RevisionLink, Digest: helloDgst}},
		{"revision repo leading slash", storage.Spec{Kind: storage.RevisionLink, Repo: "/team/app", Digest: helloDgst}},
		{"revision repo trailing slash", storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/", Digest: helloDgst}},
		{"revision repo double slash", storage.Spec{Kind: storage.RevisionLink, Repo: "team//app", Digest: helloDgst}},
		{"revision repo dotdot", storage.Spec{Kind: storage.RevisionDir, Repo: "team/../../blobs", Digest: helloDgst}},
		{"revision repo dot", storage.Spec{Kind: storage.RevisionDir, Repo: "team/./app", Digest: helloDgst}},
		{"revision repo component _", storage.Spec{Kind: storage.RevisionLink, Repo: "team/_manifests", Digest: helloDgst}},
		{"revision repo starts _", storage.Spec{Kind: storage.RevisionLink, Repo: "_uploads", Digest: helloDgst}},
		{"revision invalid digest", storage.Spec{Kind: storage.RevisionLink, Repo: "team/app", Digest: "sha256:xyz"}},
		{"revision dir empty digest", storage.Spec{Kind: storage.RevisionDir, Repo: "team/app"}},
		{"layer empty repo", storage.Spec{Kind: storage.LayerLink, Digest: helloDgst}},
		{"layer invalid digest", storage.Spec{Kind: storage.LayerDir, Repo: "team/app", Digest: "sha256:"}},
		{"layer repo component _", storage.Spec{Kind: storage.LayerDir, Repo: "team/_layers/app", Digest: helloDgst}},

		{"tag empty repo", storage.Spec{Kind: storage.TagCurrentLink, Tag: "latest"}},
		{"tag empty", storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app"}},
		{"tag with slash", storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app", Tag: "v1/current"}},
		{"tag dotdot", storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app", Tag: ".."}},
		{"tag dot", storage.Spec{Kind: storage.TagIndexDir, Repo: "team/app", Tag: ".", Digest: helloDgst}},
		{"tag index with slash", storage.Spec{Kind: storage.TagIndexLink, Repo: "team/app", Tag: "a/b", Digest: helloDgst}},
		{"tag index invalid digest", storage.Spec{Kind: storage.TagIndexLink, Repo: "team/app", Tag: "latest", Digest: "sha256:1234"}},
		{"tag index dir empty digest", storage.Spec{Kind: storage.TagIndexDir, Repo: "team/app", Tag: "latest"}},

		{"repository data empty repo", storage.Spec{Kind: storage.RepoDataDir, Rest: "_manifests"}},
		{"repository data unknown dir", storage.Spec{Kind: storage.RepoDataDir, Repo: "team/app", Rest: "_other"}},
		{"repository data empty rest", storage.Spec{Kind: storage.RepoDataDir, Repo: "team/app"}},
		{"repository data climbs", storage.Spec{Kind: storage.RepoDataDir, Repo: "team/app", Rest: "../../blobs"}},
		{"upload empty repo", storage.Spec{Kind: storage.UploadDir, Upload: "u1"}},
		{"upload repo component _", storage.Spec{Kind: storage.UploadDir, Repo: "team/_app", Upload: "u1"}},
		{"upload empty id", storage.Spec{Kind: storage.UploadDir, Repo: "team/app"}},
		{"upload id with slash", storage.Spec{Kind: storage.UploadData, Repo: "team/app", Upload: "u1/../../x"}},
		{"upload id dotdot", storage.Spec{Kind: storage.UploadDir, Repo: "team/app", Upload: ".."}},
		{"upload startedat empty id", storage.Spec{Kind: storage.UploadStartedAt, Repo: "team/app"}},
		{"upload hash state empty rest", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1"}},
		// A hash state is "<alg>/<offset>" inside the upload's hashstates directory;
		// Path must never hand out a path outside it (path.Join would clean these
		// to the upload directory, the repository or the blob store).
		{"upload hash state rest dotdot escapes", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "../../../../../../blobs"}},
		{"upload hash state rest dotdot", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "sha256/.."}},
		{"upload hash state rest dot", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "."}},
		{"upload hash state rest absolute", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "/sha256/0"}},
		{"upload hash state rest no offset", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "sha256"}},
		{"upload hash state rest non-numeric offset", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "sha256/x"}},
		{"upload hash state rest unclean", storage.Spec{Kind: storage.UploadHashState, Repo: "team/app", Upload: "u1", Rest: "sha256//0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := storage.Path(tc.spec)
			if err == nil {
				t.Fatalf("Path(%+v) = %q, want error", tc.spec, p)
			}
			if !errors.Is(err, storage.ErrBadPath) {
				t.Errorf("Path(%+v) error %v does not wrap ErrBadPath", tc.spec, err)
			}
			if p != "" {
				t.Errorf("Path(%+v) returned %q with error", tc.spec, p)
			}
		})
	}
}

func TestValidRepoName(t *testing.T) {
	good := []string{
		"busybox",
		"library/ubuntu",
		"team/app/api",
		"a/b/c/d/e",
		"my-app",
		"my_app",
		"my__app",
		"my.app",
		"app-1.2_3",
		"0",
		// The first component may be a domain (reference.NameRegexp, which the
		// registry's routes use too), so these are names the registry serves.
		"Team/app",
		"localhost:5000/app",
	}
	bad := []string{
		"",
		"team/App",
		"UPPER",
		"team/",
		"/team",
		"team//app",
		"_app",
		"team/_manifests",
		"app-",
		"-app",
		"app.",
		"app___x",
		"app:tag",
		"app@sha256:" + helloHex,
		"team/app api",
		"team/../app",
		strings.Repeat("a", 256),
	}
	for _, n := range good {
		if err := storage.ValidRepoName(n); err != nil {
			t.Errorf("ValidRepoName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := storage.ValidRepoName(n); err == nil {
			t.Errorf("ValidRepoName(%q) = nil, want error", n)
		}
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]storage.Kind{}
	for k := storage.BlobData; k <= storage.RepoDataDir; k++ {
		s := k.String()
		if s == "" || s == "unknown" {
			t.Errorf("Kind(%d).String() = %q", k, s)
		}
		if o, dup := seen[s]; dup {
			t.Errorf("Kind(%d) and Kind(%d) share the name %q", o, k, s)
		}
		seen[s] = k
	}
	if got := storage.KindUnknown.String(); got != "unknown" {
		t.Errorf("KindUnknown.String() = %q", got)
	}
	if got := storage.Kind(99).String(); got != "unknown" {
		t.Errorf("Kind(99).String() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(tc.want)
	}
	f.Add(v2 + "/repositories/_manifests/revisions/sha256/" + helloHex + "/link")
	f.Add(v2 + "/repositories/a/../b/_layers/sha256/" + helloHex + "/link")
	f.Add(v2 + "/blobs/sha256/2d/" + helloHex + "/data")
	f.Add(v2 + "/repositories/a/_uploads/u/hashstates/sha256/0/x")
	f.Add(v2 + "/repositories/a/_manifests/tags/t/index/sha512/" + hello512Hex + "/link")
	f.Add("")
	f.Fuzz(func(t *testing.T, p string) {
		s, err := storage.Parse(p)
		if err != nil {
			if !errors.Is(err, storage.ErrBadPath) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrBadPath", p, err)
			}
			return
		}
		if s.Kind < storage.BlobData || s.Kind > storage.RepoDataDir {
			t.Fatalf("Parse(%q) = kind %d", p, s.Kind)
		}
		back, err := storage.Path(s)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Path rejects it: %v", p, s, err)
		}
		if back != p {
			t.Fatalf("Path(Parse(%q)) = %q", p, back)
		}
		again, err := storage.Parse(back)
		if err != nil {
			t.Fatalf("Parse(Path(Parse(%q))): %v", p, err)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("Parse not stable for %q (-first +second):\n%s", p, diff)
		}
	})
}

// Example-style sanity check of the error text: it names the path.
func TestParseErrorNamesPath(t *testing.T) {
	p := v2 + "/blobs/sha256/zz/" + helloHex + "/data"
	_, err := storage.Parse(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Parse(%q) error = %v, want it to name the path", p, err)
	}
	_, err = storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: "team/app", Digest: "sha256:bad"})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(storage.LayerLink)) {
		t.Errorf("Path error = %v, want it to name the kind", err)
	}
}

func TestValidDigestAndSHA256Bytes(t *testing.T) {
	for _, d := range []digest.Digest{
		digest.FromString("x"),
		"sha256:" + digest.Digest(strings.Repeat("AB", 32)),
		"sha256:abc",
		"sha512:" + digest.Digest(strings.Repeat("ab", 64)),
		"sha256:" + digest.Digest(strings.Repeat("g", 64)),
		"",
	} {
		if got, want := storage.ValidDigest(d) == nil, d.Validate() == nil; got != want {
			t.Errorf("ValidDigest(%q) valid=%v, go-digest says %v", d, got, want)
		}
		raw, ok := storage.SHA256Bytes(d)
		enc, isSHA256 := strings.CutPrefix(string(d), "sha256:")
		canonical := isSHA256 && d.Validate() == nil && strings.ToLower(enc) == enc
		if ok != canonical || ok && digest.NewDigestFromBytes(digest.SHA256, raw[:]) != d {
			t.Errorf("SHA256Bytes(%q) = %x, %v", d, raw, ok)
		}
	}
}
