package storage_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// Every strategy and mode records a tag's push time, the time of its current link:
// retention policies rank tags by it.
func TestScanRecordsTagPushTimes(t *testing.T) {
	root := regtest.Sample(t)
	regtest.Age(t, root, time.Now().Add(-48*time.Hour))
	want := map[string]time.Time{}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	i := 0
	for _, f := range regtest.Files(t, root) {
		s, err := storage.Parse("/" + f)
		if err != nil || s.Kind != storage.TagCurrentLink {
			continue
		}
		when := base.Add(time.Duration(i) * time.Hour)
		i++
		if err := os.Chtimes(regtest.FSPath(root, "/"+f), when, when); err != nil {
			t.Fatal(err)
		}
		want[s.Repo+":"+s.Tag] = when
	}
	if len(want) < 3 {
		t.Fatalf("sample has %d tags", len(want))
	}
	for _, tc := range []struct {
		name string
		opts []storage.ScanOption
	}{
		{"listing", []storage.ScanOption{storage.WithWalk(false)}},
		{"listing, deferred stats", []storage.ScanOption{storage.WithWalk(false), storage.WithDeferredStats(true)}},
		{"walk", []storage.ScanOption{storage.WithWalk(true)}},
		{"link times only", []storage.ScanOption{storage.WithWalk(false), storage.WithLinkTimesOnly()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]time.Time{}
			err := storage.Scan(context.Background(), storage.NewFilesystem(root), func(e storage.Entry) error {
				if e.Kind == storage.TagCurrentLink {
					got[e.Repo+":"+e.Tag] = e.ModTime
				}
				return nil
			}, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for tag, w := range want {
				if !got[tag].Equal(w) {
					t.Errorf("%s: push time %v, want %v", tag, got[tag], w)
				}
			}
		})
	}
	// Without tag times (a plan without policies), listing does not state tags.
	err := storage.Scan(context.Background(), storage.NewFilesystem(root), func(e storage.Entry) error {
		if e.Kind == storage.TagCurrentLink && (!e.ModTime.IsZero() || e.Target == "") {
			t.Errorf("without tag times: %s:%s time %v, target %q", e.Repo, e.Tag, e.ModTime, e.Target)
		}
		return nil
	}, storage.WithWalk(false), storage.WithDeferredStats(true), storage.WithTagTimes(false))
	if err != nil {
		t.Fatal(err)
	}
}

// An upload's size is that of all its files (data, startedat, hash states), in
// every strategy: stale uploads count in what a sweep frees.
func TestScanSizesUploads(t *testing.T) {
	root := regtest.Sample(t)
	want := map[string]int64{}
	for _, f := range regtest.Files(t, root) {
		if place, _ := storage.Locate("/" + f); place != storage.PlaceAside || !strings.Contains(f, "/_uploads/") {
			continue
		}
		fi, serr := os.Stat(regtest.FSPath(root, "/"+f))
		if serr != nil {
			t.Fatal(serr)
		}
		rest := f[strings.Index(f, "/_uploads/")+len("/_uploads/"):]
		want[strings.SplitN(rest, "/", 2)[0]] += fi.Size()
	}
	if len(want) == 0 {
		t.Fatal("the sample has no upload")
	}
	for _, walk := range []bool{false, true} {
		got := map[string]int64{}
		err := storage.Scan(context.Background(), storage.NewFilesystem(root), func(e storage.Entry) error {
			if e.Kind == storage.UploadDir {
				got[e.Upload] = e.Size
			}
			return nil
		}, storage.WithWalk(walk))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("walk=%v: upload sizes %v, the files say %v", walk, got, want)
		}
	}
}
