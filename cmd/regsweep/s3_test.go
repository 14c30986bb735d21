package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/internal/synth"
)

// sampleOnS3 puts the sample registry into a fake S3 server and returns it, its
// driver and a config pointing at it.
func sampleOnS3(t *testing.T) (*benchenv.S3, driver.StorageDriver, string) {
	t.Helper()
	s3, drv := benchenv.StartS3(t, "/")
	if err := benchenv.PutTree(context.Background(), drv, "../../testdata/sample/registry"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(s3.Config("/")), 0o644); err != nil {
		t.Fatal(err)
	}
	return s3, drv, cfg
}

// On S3, from the command line: a second dry run takes the tag links from the index's
// cache and reads none; a real run reads every one of them all the same.
func TestS3RealRunsReadEveryTagLink(t *testing.T) {
	s3, _, cfg := sampleOnS3(t)
	var tagGets atomic.Int64
	s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/current/link") {
			tagGets.Add(1)
		}
		return false
	})
	time.Sleep(2 * time.Second) // links written a second or more before they are read
	idx := t.TempDir()
	// --grace 0: the sample was uploaded just now.
	mustRun(t, "gc", cfg, "-d", "-q", "--index", idx, "--grace", "0")
	tags := tagGets.Swap(0)
	if tags == 0 {
		t.Fatal("the first dry run read no tag link")
	}
	mustRun(t, "gc", cfg, "-d", "-q", "--index", idx, "--grace", "0")
	if n := tagGets.Swap(0); n != 0 {
		t.Errorf("second dry run read %d tag links, want 0 (cached)", n)
	}
	mustRun(t, "gc", cfg, "-q", "--index", idx, "--grace", "0", "--registry-url", "none", "--no-verify")
	if n := tagGets.Swap(0); n != tags {
		t.Errorf("a real run read %d tag links, want every one (%d)", n, tags)
	}
}

// On S3 a real run deletes blob data and layer links a thousand to a request
// (DeleteObjects) and no blob or layer link one by one, and leaves the tree a
// sweep of the same registry on a filesystem leaves.
func TestS3SweepInBatches(t *testing.T) {
	ctx := context.Background()
	s3, drv, cfg := sampleOnS3(t)
	// The driver's Delete is a listing and a DeleteObjects for each item; a batch,
	// one DeleteObjects for many.
	var deletes atomic.Int64
	s3.SetFault(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Query().Has("delete") {
			deletes.Add(1)
		}
		return false
	})
	fsCfg := sampleConfig(t)
	fsRoot := filepath.Join(filepath.Dir(fsCfg), "registry")
	time.Sleep(2 * time.Second) // links written a second or more before they are read
	planFile := filepath.Join(t.TempDir(), "plan.json")
	idx := t.TempDir()
	mustRun(t, "gc", cfg, "-m", "-d", "-q", "--index", idx, "--grace", "0", "--plan-out", planFile)
	b, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var p gc.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	one := len(p.Manifests) + len(p.Uploads) // deleted one by one
	for _, m := range p.Manifests {
		one += len(m.TagIndex)
	}
	if len(p.Blobs) < 2 || len(p.LayerLinks) < 2 {
		t.Fatalf("the plan deletes %d blobs and %d layer links: nothing to batch", len(p.Blobs), len(p.LayerLinks))
	}
	for c, dir := range map[string]string{cfg: idx, fsCfg: t.TempDir()} {
		mustRun(t, "gc", c, "-m", "-q", "--index", dir, "--grace", "0", "--registry-url", "none", "--no-verify")
	}
	if n := deletes.Load(); n > int64(one+2) {
		t.Errorf("the sweep made %d delete requests for %d blobs, %d layer links and %d other items: blobs and layer links were not batched", n, len(p.Blobs), len(p.LayerLinks), one)
	}
	var s3Keys, fsKeys []string
	err = drv.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			s3Keys = append(s3Keys, fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(fsRoot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fsKeys = append(fsKeys, "/"+filepath.ToSlash(strings.TrimPrefix(p, fsRoot+"/")))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(s3Keys)
	slices.Sort(fsKeys)
	if !slices.Equal(s3Keys, fsKeys) {
		t.Errorf("after the sweeps S3 holds %d files, the filesystem %d:\nS3: %v\nfs: %v", len(s3Keys), len(fsKeys), s3Keys, fsKeys)
	}
}

// Object stores: a run's hundreds of requests in flight go over connections that
// are kept and used again, not dialed for each request (Go keeps 2 idle a host
// unless told otherwise). A second run in the process dials next to none; with
// and without a CA bundle for the AWS SDK, which then sends through a transport
// of its own unless the default client has one.
func TestS3ConnectionsAreKept(t *testing.T) {
	bundles := []string{""}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		bundles = append(bundles, "/etc/ssl/certs/ca-certificates.crt")
	}
	for _, bundle := range bundles {
		t.Run("AWS_CA_BUNDLE="+bundle, func(t *testing.T) {
			t.Setenv("AWS_CA_BUNDLE", bundle)
			s3, drv := benchenv.StartS3(t, "/")
			if _, err := synth.Generate(context.Background(), drv, 3, synth.Layout{Repos: 10, ManifestsPerRepo: 10, TagsPerRepo: 5, LayersPerManifest: 2}); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(t.TempDir(), "config.yml")
			if err := os.WriteFile(cfg, []byte(s3.Config("/")), 0o644); err != nil {
				t.Fatal(err)
			}
			// Both runs at the same cap: a second run that went wider than the first
			// would dial the difference (it did, under -race), kept or not.
			mustRun(t, "gc", cfg, "-d", "-q", "--index", t.TempDir(), "--workers", "32")
			requests, conns := s3.Requests(), s3.Connections()
			mustRun(t, "gc", cfg, "-d", "-q", "--index", t.TempDir(), "--workers", "32")
			requests, conns = s3.Requests()-requests, s3.Connections()-conns
			if requests < 100 {
				t.Fatalf("the run made %d requests: too few to tell", requests)
			}
			if conns > requests/10 {
				t.Errorf("the second run dialed %d connections for %d requests", conns, requests)
			} else {
				t.Logf("the second run dialed %d connections for %d requests", conns, requests)
			}
		})
	}
}
