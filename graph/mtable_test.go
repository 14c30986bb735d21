package graph

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"unsafe"
)

func TestManifestTable(t *testing.T) {
	if s := unsafe.Sizeof(manifestRec{}); s > 12 {
		t.Errorf("a manifest record takes %d bytes, want <= 12", s)
	}
	tab := newManifestTable(3)
	in := []Manifest{
		{ID: 3, MediaType: "application/vnd.oci.image.manifest.v1+json", Subject: 9},
		{ID: 5, MediaType: "application/vnd.oci.image.index.v1+json", ArtifactType: "application/x-sig"},
		{ID: 6, Missing: true},
		{ID: 8, MediaType: "application/vnd.oci.image.manifest.v1+json", Unreadable: "bad json", Mentions: []uint32{3, 4}, Partial: true},
	}
	for _, m := range in {
		m.Digest = "sha256:dropped"
		if err := tab.add(m); err != nil {
			t.Fatal(err)
		}
	}
	tab.seal()
	for _, want := range in {
		got, ok := tab.get(want.ID)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("get(%d) = %+v, %v; want %+v", want.ID, got, ok, want)
		}
	}
	for _, id := range []uint32{0, 4, 7, 9} {
		if m, ok := tab.get(id); ok {
			t.Errorf("get(%d) = %+v for no manifest", id, m)
		}
	}
	if err := tab.add(Manifest{ID: 8}); !errors.Is(err, ErrDamaged) {
		t.Errorf("a repeated id gave %v, want ErrDamaged", err)
	}
}

// More distinct media types than a record can number: the rest are kept whole.
func TestManifestTableManyTypes(t *testing.T) {
	tab := newManifestTable(0)
	const n = 70000
	for i := range n {
		m := Manifest{ID: uint32(i + 1), MediaType: "application/x", ArtifactType: fmt.Sprintf("application/x-%d", i)}
		if err := tab.add(m); err != nil {
			t.Fatal(err)
		}
	}
	tab.seal()
	for _, i := range []int{0, 65533, 65534, 65535, 69999} {
		m, ok := tab.get(uint32(i + 1))
		if want := fmt.Sprintf("application/x-%d", i); !ok || m.ArtifactType != want || m.MediaType != "application/x" {
			t.Errorf("manifest %d: %+v, want artifact type %s", i+1, m, want)
		}
	}
	if len(tab.whole) == 0 {
		t.Error("no manifest kept whole past 65535 types")
	}
}
