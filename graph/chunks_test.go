package graph

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
)

func TestIDChunkRoundTrip(t *testing.T) {
	mt := time.Unix(1700000000, 123)
	in := []struct {
		d    digest.Digest
		blob *Blob
	}{
		{"", nil}, // the id-0 placeholder
		{digest.FromString("a"), &Blob{Size: 7, ModTime: mt}},
		{digest.FromString("b"), nil},
		{digest.Digest("sha512:" + strings.Repeat("ab", 64)), &Blob{Size: 1 << 40, ModTime: mt}},
		{digest.Digest("sha256:" + strings.Repeat("AB", 32)), nil}, // not canonical hex: kept as text
	}
	var buf []byte
	for _, x := range in {
		buf = appendIDRecord(buf, x.d, x.blob)
	}
	i := 0
	err := decodeIDChunk(0, buf, func(id uint32, d digest.Digest, b *Blob) error {
		if id != uint32(i) || d != in[i].d {
			t.Errorf("record %d: id %d digest %q, want %q", i, id, d, in[i].d)
		}
		if (b == nil) != (in[i].blob == nil) || b != nil && (b.Size != in[i].blob.Size || !b.ModTime.Equal(mt) || b.Digest != d || b.ID != id) {
			t.Errorf("record %d: blob %+v, want %+v", i, b, in[i].blob)
		}
		i++
		return nil
	})
	if err != nil || i != len(in) {
		t.Fatalf("decoded %d of %d records: %v", i, len(in), err)
	}
	if err := decodeIDChunk(0, buf[:len(buf)-3], func(uint32, digest.Digest, *Blob) error { return nil }); err == nil {
		t.Error("truncated chunk decoded without error")
	}
}

func TestLinkRunRoundTrip(t *testing.T) {
	mt := time.Unix(1700000000, 5)
	var buf []byte
	want := []Link{{Repo: "r", ID: 3, Target: 3, ModTime: mt}, {Repo: "r", ID: 9, Target: 0, Bad: "link content is not a digest"}}
	for _, l := range want {
		buf = appendLinkRecord(buf, l.ID, l.Target, l.ModTime, l.Bad)
	}
	var got []Link
	if err := decodeLinkRun("r", buf, func(l Link) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
