package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc/analysis"
)

func decodeInspection(t *testing.T, out string) analysis.Inspection {
	t.Helper()
	var in analysis.Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return in
}

// readBlob reads a blob of the registry at root.
func readBlob(t *testing.T, root string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker/registry/v2/blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The sample's multi-platform index, against what its files say.
func TestInspectIndex(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	link, err := os.ReadFile(filepath.Join(root, "docker/registry/v2/repositories/team/app/api/_manifests/tags/v1/current/link"))
	if err != nil {
		t.Fatal(err)
	}
	d := digest.Digest(link)
	var idx v1.Index
	if err := json.Unmarshal(readBlob(t, root, d), &idx); err != nil {
		t.Fatal(err)
	}
	in := decodeInspection(t, mustRun(t, "inspect", cfg, "team/app/api:v1", "-q", "-o", "json", "--index", t.TempDir()))
	if in.Digest != d || in.MediaType != v1.MediaTypeImageIndex || !slices.Equal(in.Tags, []string{"v1"}) || in.PushedAt.IsZero() {
		t.Errorf("inspection %+v", in)
	}
	// Platforms, and the bytes: every distinct blob the index reaches, from the files.
	total := map[digest.Digest]int64{d: int64(len(readBlob(t, root, d)))}
	if len(in.Platforms) != len(idx.Manifests) {
		t.Fatalf("%d platforms, the index has %d", len(in.Platforms), len(idx.Manifests))
	}
	for i, c := range idx.Manifests {
		p := in.Platforms[i]
		want := c.Platform.OS + "/" + c.Platform.Architecture
		if p.Digest != c.Digest || p.Platform != want || p.MediaType != c.MediaType {
			t.Errorf("platform %d: %+v, the index says %s %s", i, p, c.Digest, want)
		}
		var m v1.Manifest
		json.Unmarshal(readBlob(t, root, c.Digest), &m)
		child := map[digest.Digest]int64{c.Digest: c.Size, m.Config.Digest: m.Config.Size}
		for _, l := range m.Layers {
			child[l.Digest] = l.Size
		}
		var sum int64
		for k, v := range child {
			sum += v
			total[k] = v
		}
		if p.Bytes != sum {
			t.Errorf("platform %s: %d bytes, the files say %d", p.Platform, p.Bytes, sum)
		}
	}
	var sum int64
	for _, v := range total {
		sum += v
	}
	if in.Bytes.Total != sum || in.Bytes.Blobs != len(total) || in.Bytes.Unique+in.Bytes.Shared != sum || in.Bytes.Shared == 0 {
		t.Errorf("bytes %+v; the files say %d in %d blobs, and the base layer is shared", in.Bytes, sum, len(total))
	}
	if len(in.Referrers) != 1 || !strings.Contains(in.Referrers[0].ArtifactType, "cosign") || !slices.Equal(in.Referrers[0].Repositories, []string{"team/app/api"}) {
		t.Errorf("referrers %+v", in.Referrers)
	}
	text := mustRun(t, "inspect", cfg, "team/app/api:v1", "-q", "--index", t.TempDir())
	for _, want := range []string{"DELETE /v2/team/app/api/manifests/" + d.String(), "linux/arm64", "deleting the digest removes this tag", "gc delete-untagged: kept: tagged v1"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// Two tags on one image: deleting the digest removes both, and no byte is unique to
// either tag; an untagged manifest by digest: gc -m deletes it; from an index alone.
func TestInspectTagsAndDigests(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	dir := scanned(t, cfg)
	web := decodeInspection(t, mustRun(t, "inspect", "--index", dir, "team/app/web:latest", "-o", "json"))
	if web.Bytes.Unique != 0 || web.Bytes.Shared != web.Bytes.Total || !slices.Equal(web.Tags, []string{"latest"}) {
		t.Errorf("web:latest (its image is also multi's child): %+v", web)
	}
	// debian's untagged 12.0 manifest, by digest.
	revs, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/library/debian/_manifests/revisions/sha256/*"))
	tag, _ := os.ReadFile(filepath.Join(root, "docker/registry/v2/repositories/library/debian/_manifests/tags/12/current/link"))
	var old string
	for _, r := range revs {
		if d := "sha256:" + filepath.Base(r); d != string(tag) {
			old = d
		}
	}
	in := decodeInspection(t, mustRun(t, "inspect", "--index", dir, "library/debian@"+old, "-o", "json", "--grace", "0"))
	if in.Digest.String() != old || len(in.Tags) != 0 || len(in.GC) != 2 || !in.GC[0].Kept || in.GC[1].Kept || in.Bytes.UniqueBlobs == 0 {
		t.Errorf("untagged debian manifest: %+v", in)
	}
	for _, args := range [][]string{
		{"inspect", "--index", dir, "library/debian:13"},
		{"inspect", "--index", dir, "no/such:repo"},
		{"inspect", "--index", dir, "library/debian@sha256:" + strings.Repeat("0", 64)},
		{"inspect", "library/debian:12"},
		{"inspect", "--index", dir, "library/debian"},
	} {
		if _, err := run(t, args...); exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}
