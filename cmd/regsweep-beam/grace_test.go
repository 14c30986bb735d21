package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// Grace: on a registry aged two hours with pushes under way, an hour of grace keeps
// in both engines, and only by grace: a blob uploaded just now and linked nowhere
// yet; an old blob a layer link written just now names; an old blob an untagged
// image pushed just now references (under -m, the young revision link is a root).
// The plans are equal.
func TestPlanEqualsGCWithGrace(t *testing.T) {
	root := regtest.Sample(t)
	now := time.Now()
	linked := regtest.PutBlob(t, root, "", []byte("old blob, young link"))
	layer := regtest.PutBlob(t, root, "", []byte("old layer of a young image"))
	regtest.Age(t, root, now.Add(-2*time.Hour))
	young := regtest.PutBlob(t, root, "", []byte("a blob being pushed"))
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "library/debian", Digest: linked}, []byte(linked))
	regtest.PutManifest(t, root, "team/app/api", "", fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":%q},"layers":[{"digest":%q}]}`, layer, layer))
	for _, m := range modes[:2] {
		m.grace = time.Hour
		want := gcPlan(t, root, now, m)
		got, err := beamPlan(t, fsConfig(root), now, m, 16)
		if err != nil {
			t.Fatal(err)
		}
		samePlan(t, m.name, want, got)
		for _, b := range want.Blobs {
			if d := b.Digest(); d == young || d == linked || d == layer {
				t.Errorf("%s: gc deletes %s, which grace keeps", m.name, d)
			}
		}
		if len(want.Blobs) == 0 {
			t.Errorf("%s: gc deletes nothing: the test exercises nothing", m.name)
		}
	}
}
