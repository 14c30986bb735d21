package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/internal/synth"
)

func TestPackFile(t *testing.T) {
	dir := t.TempDir()
	p, err := openPacks(dir)
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("tiny")
	large := bytes.Repeat([]byte("0123456789"), 100)
	var refs [][]byte
	for _, v := range [][]byte{small, large, large[:packMinFar]} {
		ref, err := p.put(v)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	if refs[0][0] != packInline || refs[1][0] != packFar || refs[2][0] != packFar {
		t.Fatalf("encodings %d %d %d: want inline, far, far", refs[0][0], refs[1][0], refs[2][0])
	}
	check := func(p *packFile, when string) {
		t.Helper()
		for i, want := range [][]byte{small, large, large[:packMinFar]} {
			got, err := p.get(refs[i], nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: value %d: %q, %v; want %q", when, i, got, err, want)
			}
		}
	}
	check(p, "buffered") // read before anything was flushed
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if p, err = openPacks(dir); err != nil {
		t.Fatal(err)
	}
	check(p, "reopened")
	// Appends after a reopen land after what is there.
	ref, err := p.put(large)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.get(ref, nil); err != nil || !bytes.Equal(got, large) {
		t.Errorf("appended after reopen: %q, %v", got, err)
	}
	check(p, "after append")

	if err := p.reset(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "packs")); st.Size() != 0 {
		t.Errorf("reset left %d bytes", st.Size())
	}
	if _, err := p.get(refs[1], nil); !errors.Is(err, ErrDamaged) {
		t.Errorf("read past the end after reset: %v, want ErrDamaged", err)
	}
	ref, err = p.put(large)
	if err != nil {
		t.Fatal(err)
	}
	if off := ref[1:9]; !bytes.Equal(off, make([]byte, 8)) {
		t.Errorf("first value after reset at offset %x, want 0", off)
	}
	if got, err := p.get(ref, nil); err != nil || !bytes.Equal(got, large) {
		t.Errorf("after reset: %q, %v", got, err)
	}
	if _, err := p.get([]byte{7, 1, 2}, nil); err == nil || !strings.Contains(err.Error(), "unknown encoding") {
		t.Errorf("unknown tag: %v", err)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
}

// dump is what an index holds, as sorted text with digests for ids (which depend
// on the order of a concurrent listing), through the Reader interface.
func dump(t *testing.T, x *Index) string {
	t.Helper()
	var lines []string
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	dg := func(id uint32) string {
		if id == 0 {
			return "-"
		}
		d, err := x.Digest(id)
		must(err)
		return d.String()
	}
	add := func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	must(x.Blobs(func(bl Blob) error { add("blob %s %s %d", dg(bl.ID), bl.Digest, bl.Size); return nil }))
	must(x.Layers(func(l Link) error { add("layer %s %s %s %q", l.Repo, dg(l.ID), dg(l.Target), l.Bad); return nil }))
	must(x.AllEdges(func(from uint32, e Edge) error { add("edge %s %d %s", dg(from), e.Kind, dg(e.To)); return nil }))
	must(x.TagIndex(func(e TagIndexEntry) error { add("history %s %s %s", e.Repo, e.Tag, dg(e.ID)); return nil }))
	must(x.Manifests(func(m Manifest) error {
		var edges []string
		must(x.Edges(m.ID, func(e Edge) error { edges = append(edges, dg(e.To)); return nil }))
		add("manifest %s %s %v", m.Digest, dg(m.ID), edges)
		return nil
	}))
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// An index rebuilt in place, and one reopened, read the same as a fresh one.
func TestIndexRebuildAndReopen(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	if _, err := synth.Generate(ctx, drv, 7, synth.Layout{Repos: 4, ManifestsPerRepo: 30, TagsPerRepo: 10, LayersPerManifest: 40, ShareRatio: 0.3, IndexFraction: 0.2, OrphanBlobs: 50}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	x, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(ctx, drv, x, WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	first := dump(t, x)
	if !strings.Contains(first, "edge ") || !strings.Contains(first, "layer ") {
		t.Fatalf("index holds no edges or layer links:\n%.500s", first)
	}
	if err := Build(ctx, drv, x, WithWorkers(1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, dump(t, x)); diff != "" {
		t.Errorf("rebuilt in place (-first +rebuilt):\n%s", diff)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if x, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if diff := cmp.Diff(first, dump(t, x)); diff != "" {
		t.Errorf("reopened (-first +reopened):\n%s", diff)
	}
	// An index another format wrote is not read.
	m, err := x.Meta()
	if err != nil {
		t.Fatal(err)
	}
	m.Format = indexFormat - 1
	b := &builder{idx: x, wb: x.db.NewWriteBatch()}
	if err := b.putJSON([]byte{pMeta}, m); err != nil || b.wb.Flush() != nil {
		t.Fatal(err)
	}
	if _, err := x.Meta(); err == nil || !strings.Contains(err.Error(), "run a scan first") {
		t.Errorf("index of format %d: Meta gave %v, want an error asking for a scan", m.Format, err)
	}
}
