package benchenv

import (
	"context"
	"testing"
	"time"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	rstorage "github.com/regsweep/regsweep/storage"
)

// TestS3Driver plans a generated registry through the real s3 driver.
func TestS3Driver(t *testing.T) {
	ctx := context.Background()
	s, err := NewS3("registry")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	drv, err := s.Driver(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	st, err := synth.Generate(ctx, drv, 1, synth.Layout{Repos: 3, ManifestsPerRepo: 6, TagsPerRepo: 3, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.3, OrphanBlobs: 5, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	before := s.Requests()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(8)); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Blobs != st.Blobs || p.Summary.Tags != st.Tags || p.Summary.Repositories != st.Repos {
		t.Errorf("summary %+v, generated %+v", p.Summary, st)
	}
	if p.Summary.DeleteBlobs < 5 {
		t.Errorf("delete_blobs = %d, want at least the 5 orphans", p.Summary.DeleteBlobs)
	}
	t.Logf("scan made %d S3 requests for %d files", s.Requests()-before, st.Files)
}

func TestSynthetic(t *testing.T) {
	ctx := context.Background()
	drv := NewSynthetic(20000, 4, 10)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithScanOptions(rstorage.WithWalk(true))); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Blobs != 20000+40 || p.Summary.Manifests != 40 || p.Summary.Tags != 20 || len(p.Warnings) != 0 {
		t.Fatalf("summary %+v warnings %v", p.Summary, p.Warnings)
	}
	// -m: the 20 untagged manifests and what only they reference, plus the 2% never referenced.
	if p.Summary.DeleteManifests != 20 || p.Summary.DeleteBlobs < 400 || p.Summary.DeleteBlobs > 12000 {
		t.Errorf("summary %+v", p.Summary)
	}
}
