package gc

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Spilled items in any order come out sorted by digest text, sha256 and other
// digests alike, whatever the length of the runs.
func TestSortSpilled(t *testing.T) {
	defer SpillAll(1)()
	var items []BlobItem
	for i := range 5000 {
		sum := sha256.Sum256(fmt.Append(nil, i))
		items = append(items, newBlobItem(digest.NewDigestFromBytes(digest.SHA256, sum[:]), int64(i)))
	}
	for i := range 20 {
		items = append(items, newBlobItem(digest.FromString(fmt.Sprint("x", i)), 1))
		items = append(items, newBlobItem(digest.SHA512.FromString(fmt.Sprint(i)), 2))
	}
	want := slices.SortedFunc(slices.Values(items), compareBlobs)
	for _, run := range []int{1, 3, 64, 5039, 5040, 10000} {
		sortRun = run
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		p := &Plan{}
		blobs := p.blobArray(t.TempDir(), len(items)+10)
		if p.blobSpill == nil {
			t.Fatal("no spill")
		}
		p.Blobs = append(blobs, items...)
		if err := p.sortSpilled(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Blobs, want) {
			t.Errorf("runs of %d: %d items not in digest order", run, len(p.Blobs))
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A directory that takes no spill file leaves the items in memory: the plan is made
// all the same.
func TestSpillFallsBackToMemory(t *testing.T) {
	defer SpillAll(1)()
	p := &Plan{}
	blobs := p.blobArray(t.TempDir()+"/missing", 100)
	if p.blobSpill != nil || cap(blobs) != 100 {
		t.Fatalf("spilled %v, room for %d items: want 100 in memory", p.blobSpill != nil, cap(blobs))
	}
}
