package graph

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

// Every manifest of the sample registry: its parse survives the cache's encoding,
// and a truncated encoding is an error, never a shorter parse.
func TestParsedEncodingRoundTrip(t *testing.T) {
	blobs := filepath.Join("..", "testdata", "sample", "registry", "docker", "registry", "v2", "blobs")
	n := 0
	err := filepath.WalkDir(blobs, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		parsed, err := ParseManifest(b)
		if err != nil {
			return nil // a layer or config
		}
		n++
		enc := encodeParsed(parsed)
		got, err := decodeParsed(enc)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if diff := cmp.Diff(parsed, got); diff != "" {
			t.Errorf("%s (-parsed +decoded):\n%s", p, diff)
		}
		for cut := range len(enc) {
			if _, err := decodeParsed(enc[:cut]); err == nil {
				t.Errorf("%s: the encoding cut at %d of %d decodes", p, cut, len(enc))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("%d manifests in the sample", n)
	}
	// A digest that is not sha256 is kept as text.
	p := Parsed{MediaType: "m", Refs: []Ref{{Kind: EdgeLayer, Digest: digest.Digest("sha512:"+string(make([]byte, 0))) + "ab", Size: -1, Platform: "linux/arm64/v8"}}}
	got, err := decodeParsed(encodeParsed(p))
	if err != nil || !cmp.Equal(p, got) {
		t.Errorf("non-sha256 ref: %+v, %v", got, err)
	}
}

// The mcache file only grows; once less than half of it is live, the next build
// clears it and reads every manifest again.
func TestManifestCacheCleared(t *testing.T) {
	old := mcacheCompactMin
	mcacheCompactMin = 0
	defer func() { mcacheCompactMin = old }()
	ctx := context.Background()
	idx, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	drv := storage.NewFilesystem(filepath.Join("..", "testdata", "sample", "registry"))
	build := func() Meta {
		t.Helper()
		if err := Build(ctx, drv, idx); err != nil {
			t.Fatal(err)
		}
		m, _ := idx.Meta()
		return m
	}
	first := build()
	if m := build(); m.ManifestsRead != 0 {
		t.Fatalf("rerun read %d manifests", m.ManifestsRead)
	}
	// Garbage: as many dead bytes as live ones, and one more.
	idx.mcache.put(make([]byte, idx.mcache.size+1))
	if m := build(); m.ManifestsRead != first.ManifestsRead || m.ManifestsCached != 0 {
		t.Errorf("after the cache went mostly dead: read %d, cached %d; want every manifest read (%d)", m.ManifestsRead, m.ManifestsCached, first.ManifestsRead)
	}
	if m := build(); m.ManifestsRead != 0 {
		t.Errorf("the rebuilt cache: read %d", m.ManifestsRead)
	}
}

// A tag link is cached only when written a second or more before it was read: an
// object store's times are whole seconds, so a rewrite in the same second as the
// read would otherwise keep the time the cache checks.
func TestTagLinkCachedOnlyWhenOlderThanItsRead(t *testing.T) {
	idx, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	read := time.Date(2026, 11, 30, 12, 0, 10, 500_000_000, time.UTC)
	b := &builder{idx: idx, wb: idx.db.NewWriteBatch(), linkCacheOn: true}
	for _, c := range []struct {
		written time.Time
		cached  bool
	}{
		{read.Truncate(time.Second), false},                       // the read's own second
		{read.Truncate(time.Second).Add(-time.Second + 1), false}, // less than a second before that
		{read.Truncate(time.Second).Add(-2 * time.Second), true},
	} {
		p := "/docker/registry/v2/repositories/a/_manifests/tags/" + c.written.Format("150405.000000000") + "/current/link"
		e := storage.Entry{Path: p, Size: 71, ModTime: c.written, ReadAt: read, Target: digest.FromString("x")}
		if err := b.cacheLink(e); err != nil {
			t.Fatal(err)
		}
		if err := b.wb.Flush(); err != nil {
			t.Fatal(err)
		}
		b.wb = idx.db.NewWriteBatch()
		_, got := linkCache{idx}.Link(p, 71, c.written)
		if got != c.cached {
			t.Errorf("written %v, read %v: cached %v, want %v", c.written, read, got, c.cached)
		}
	}
}
