package gc

import (
	"container/heap"
	"math"
	"runtime/debug"
	"slices"
	"unsafe"

	"github.com/regsweep/regsweep/internal/spill"
)

// WithSpillDir keeps a plan's blob items in a file in dir, mapped, when they would
// take more than an eighth of the Go memory limit: at 100M blobs a plan deletes
// ten million blobs, 400 MB of items. The pages are written back and dropped near
// the memory budget (internal/memlimit). Close the plan to release them.
func WithSpillDir(dir string) Option {
	return func(o *options) error { o.spillDir = dir; return nil }
}

// spillAbove returns the bytes of blob items a plan holds in memory before it
// spills: an eighth of the Go memory limit, and no spill without a limit.
var spillAbove = func() int64 {
	l := debug.SetMemoryLimit(-1)
	if l == math.MaxInt64 {
		return math.MaxInt64
	}
	return l / 8
}

// releaseEvery is how many items are written to a spill file between two drops of
// its pages from the process (2.5 MB).
var releaseEvery = 1 << 16

// sortRun is the items sorted at a time in a spilled plan (20 MiB): the pages of
// one run are resident while it sorts, the rest can be written back.
var sortRun = 1 << 19

// blobArray returns an empty slice with room for n blob items: from a spill file in
// dir when they are many, otherwise from the heap. Where dir takes no spill file (a
// read-only index a report reads, a full disk, a file system without fallocate) the
// items stay in memory as well: the memory limit is soft, and a plan must not fail
// for want of a cache.
func (p *Plan) blobArray(dir string, n int) []BlobItem {
	if dir == "" || int64(n)*int64(unsafe.Sizeof(BlobItem{})) <= spillAbove() {
		return make([]BlobItem, 0, n)
	}
	a, err := spill.New[BlobItem](dir, n)
	if err != nil {
		return make([]BlobItem, 0, n)
	}
	p.blobSpill = a
	return a.Items()[:0]
}

// sortSpilled sorts spilled blob items without holding them all resident: runs of
// sortRun items are sorted in place and merged into a second spill file. The items
// usually come sorted already (ids follow the blob store's listing order).
func (p *Plan) sortSpilled(dir string) error {
	if p.blobSpill == nil {
		return nil
	}
	defer p.blobSpill.Release() // what the sort read or wrote leaves the process
	sorted := true
	p.blobChunks(func(i int, c []BlobItem) bool {
		sorted = slices.IsSortedFunc(c, compareBlobs) && (i == 0 || compareBlobs(p.Blobs[i-1], c[0]) < 0)
		return sorted
	})
	if sorted {
		return nil
	}
	n := len(p.Blobs)
	var runs blobRuns
	for i := 0; i < n; i += sortRun {
		r := p.Blobs[i:min(i+sortRun, n)]
		slices.SortFunc(r, compareBlobs)
		runs = append(runs, r)
		p.blobSpill.Release()
	}
	if len(runs) == 1 {
		return nil
	}
	out, err := spill.New[BlobItem](dir, n)
	if err != nil {
		// The sorted runs are in place: a sort in memory finishes them.
		slices.SortFunc(p.Blobs, compareBlobs)
		return nil
	}
	merged := out.Items()[:0]
	heap.Init(&runs)
	for len(runs) > 0 {
		merged = append(merged, runs[0][0])
		if len(merged)%releaseEvery == 0 {
			out.Release()
			p.blobSpill.Release()
		}
		if runs[0] = runs[0][1:]; len(runs[0]) == 0 {
			heap.Pop(&runs)
		} else {
			heap.Fix(&runs, 0)
		}
	}
	if err := p.blobSpill.Close(); err != nil {
		out.Close()
		return err
	}
	out.Release()
	p.blobSpill, p.Blobs = out, merged
	return nil
}

// blobChunks calls fn with the blob items releaseEvery at a time, from index i,
// until it returns false; a spilled plan's pages leave the process after each, so a
// pass over ten million items holds 2.5 MB of them resident, not 400.
func (p *Plan) blobChunks(fn func(i int, c []BlobItem) bool) {
	for i := 0; i < len(p.Blobs); i += releaseEvery {
		ok := fn(i, p.Blobs[i:min(i+releaseEvery, len(p.Blobs))])
		p.blobSpill.Release() // nil: not spilled
		if !ok {
			return
		}
	}
}

// blobRuns is a heap of sorted runs by their first item.
type blobRuns [][]BlobItem

func (h blobRuns) Len() int           { return len(h) }
func (h blobRuns) Less(i, j int) bool { return compareBlobs(h[i][0], h[j][0]) < 0 }
func (h blobRuns) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *blobRuns) Push(x any)        { *h = append(*h, x.([]BlobItem)) }
func (h *blobRuns) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Close releases the blob items of a plan that spilled them (WithSpillDir); its
// Blobs must not be used after. Other plans have nothing to release.
func (p *Plan) Close() error {
	if p.blobSpill == nil {
		return nil
	}
	p.Blobs = nil
	err := p.blobSpill.Close()
	p.blobSpill = nil
	return err
}
