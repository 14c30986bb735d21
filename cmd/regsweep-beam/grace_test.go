package main

import (
	"testing"
	"time"

	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// Grace: on a registry aged two hours with a push under way (a layer, an untagged
// image and a linked blob written just now), an hour of grace keeps what is young
// in both engines, and the plans are equal.
func TestPlanEqualsGCWithGrace(t *testing.T) {
	root := regtest.Sample(t)
	now := time.Now()
	regtest.Age(t, root, now.Add(-2*time.Hour))
	regtest.PutBlob(t, root, "team/app/web", []byte("a layer being pushed"))
	regtest.PutManifest(t, root, "team/app/api", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:`+
		"0000000000000000000000000000000000000000000000000000000000000000"+`"},"layers":[]}`))
	young := regtest.PutBlob(t, root, "", []byte("young, linked"))
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "library/debian", Digest: young}, []byte(young))
	for _, m := range modes[:2] {
		m.grace = time.Hour
		want := gcPlan(t, root, now, m)
		got, err := beamPlan(t, fsConfig(root), now, m, 16)
		if err != nil {
			t.Fatal(err)
		}
		samePlan(t, m.name, want, got)
		if want.Summary.KeptByGrace == 0 || len(want.Blobs) == 0 {
			t.Errorf("%s: gc keeps %d by grace and deletes %d blobs: the test exercises nothing", m.name, want.Summary.KeptByGrace, len(want.Blobs))
		}
	}
}
