package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
)

// On S3, from the command line: a second dry run takes the tag links from the index's
// cache and reads none; a real run reads every one of them all the same.
func TestS3RealRunsReadEveryTagLink(t *testing.T) {
	ctx := context.Background()
	s3, drv := benchenv.StartS3(t, "/")
	if err := benchenv.PutTree(ctx, drv, "../../testdata/sample/registry"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(s3.Config("/")), 0o644); err != nil {
		t.Fatal(err)
	}
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
