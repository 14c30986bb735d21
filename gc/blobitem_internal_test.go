package gc

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobItemDigests(t *testing.T) {
	ds := []digest.Digest{
		digest.FromString("a"),
		digest.FromString("b"),
		digest.Digest("sha256:" + strings.Repeat("ff", 32)),
		digest.Digest("sha256:" + strings.Repeat("00", 32)),
		digest.Digest("sha512:" + strings.Repeat("ab", 64)),
		digest.Digest("sha256:" + strings.Repeat("AB", 32)), // not canonical: kept as text
		digest.Digest("sha256:abc"),
	}
	var items []BlobItem
	for i, d := range ds {
		b := newBlobItem(d, int64(i))
		if b.Digest() != d {
			t.Errorf("digest %s came back as %s", d, b.Digest())
		}
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var back BlobItem
		err = json.Unmarshal(j, &back)
		if d.Validate() != nil {
			if err == nil {
				t.Errorf("invalid digest %s decoded from a plan without error", d)
			}
			continue
		}
		if err != nil || back.Digest() != d || b.Size() != int64(i) || back.Size() != int64(i) || back.Path() != b.Path() {
			t.Errorf("round trip of %s: %+v, %v (json %s)", d, back, err, j)
		}
		items = append(items, b)
	}
	slices.SortFunc(items, compareBlobs)
	if !slices.IsSortedFunc(items, func(a, b BlobItem) int { return cmp.Compare(a.Digest(), b.Digest()) }) {
		t.Errorf("compareBlobs does not order by digest text: %v", items)
	}
}

// A plan may hold ten million blob items: they must stay small and hold no pointer,
// or the collector scans them all on every cycle.
func TestBlobItemIsFlat(t *testing.T) {
	typ := reflect.TypeFor[BlobItem]()
	if typ.Size() > 40 {
		t.Errorf("BlobItem is %d bytes, want at most 40", typ.Size())
	}
	for i := range typ.NumField() {
		switch f := typ.Field(i); f.Type.Kind() {
		case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Interface:
			t.Errorf("BlobItem.%s is a %s: the collector would scan every item", f.Name, f.Type.Kind())
		}
	}
}

// A plan file with a negative size is refused, not read as some other size.
func TestBlobItemNegativeSize(t *testing.T) {
	var b BlobItem
	if err := json.Unmarshal([]byte(`{"digest":"`+string(digest.FromString("a"))+`","size":-1}`), &b); err == nil {
		t.Errorf("negative size accepted as %d", b.Size())
	}
}
