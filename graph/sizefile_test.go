package graph

import (
	"os"
	"testing"
)

// The file gives what the in-memory table gives, for every id: unknown, zero, small,
// at the 4 GiB boundary and beyond it, across blocks, with blocks evicted.
func TestSizeFile(t *testing.T) {
	defer func(n int) { sizeCachedBlocks = n }(sizeCachedBlocks)
	sizeCachedBlocks = 2
	const maxID = 3*sizeBlock + 17
	want := NewSizes(maxID)
	var ids []uint32
	for id := uint32(1); id <= maxID; id++ {
		if id%7 == 0 {
			continue // not a blob: unknown
		}
		size := int64(id) * 1000
		switch id % 101 {
		case 3:
			size = 0
		case 5:
			size = bigSize - 2 // the largest held in 4 bytes
		case 6:
			size = bigSize - 1
		case 9:
			size = 5 << 40
		}
		want.Set(id, size)
		ids = append(ids, id)
	}
	dir := t.TempDir()
	z, err := writeSizeFile(dir, maxID, func(fn func(uint32, int64) error) error {
		for _, id := range ids {
			if err := fn(id, want.Of(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every id and one past, scattered, so that blocks are evicted and read again.
	for i := range uint32(maxID + 2) {
		id := i * 7919 % (maxID + 2)
		gn, gk := z.Lookup(id)
		wn, wk := want.Lookup(id)
		if gn != wn || gk != wk {
			t.Fatalf("Lookup(%d) = %d, %v; want %d, %v", id, gn, gk, wn, wk)
		}
	}
	if len(z.blocks.m) > sizeCachedBlocks {
		t.Errorf("%d blocks kept, want at most %d", len(z.blocks.m), sizeCachedBlocks)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the sizes file is visible in the index directory: %v", left)
	}
	// Out-of-order ids are a damaged index, not a wrong size.
	if _, err := writeSizeFile(dir, maxID, func(fn func(uint32, int64) error) error {
		if err := fn(5, 1); err != nil {
			return err
		}
		return fn(4, 1)
	}); err == nil {
		t.Error("ids out of order were accepted")
	}
}
