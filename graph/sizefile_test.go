package graph

import (
	"os"
	"slices"
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

// Sizes read in order, in spans, are the sizes Lookup gives: for every id, for ids a
// few to a block, for ids blocks apart (past the gap and past a span), and for ids
// beyond the file.
func TestSizeFileSorted(t *testing.T) {
	const maxID = (sizeSpan*2 + 40) * sizeBlock
	want := NewSizes(maxID)
	z, err := writeSizeFile(t.TempDir(), maxID, func(fn func(uint32, int64) error) error {
		for id := uint32(1); id <= maxID; id++ {
			size := int64(id)*3 + 1
			switch {
			case id%5 == 0:
				continue // unknown
			case id%7919 == 0:
				size = 6 << 40
			case id%11 == 0:
				size = 0
			}
			want.Set(id, size)
			if err := fn(id, size); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []uint32{1, 3, 97, sizeBlock - 1, sizeBlock*(sizeGap+1) + 5, sizeBlock * (sizeSpan + 3)} {
		var ids []uint32
		for id := uint32(0); id <= maxID+2*sizeBlock; id += step {
			ids = append(ids, id)
		}
		ids = append(ids, ids[len(ids)-1]) // a repeat
		out := make([]int64, len(ids))
		if err := z.OfSorted(ids, out); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if out[i] != want.Of(id) {
				t.Fatalf("step %d: size of %d = %d, want %d", step, id, out[i], want.Of(id))
			}
		}
	}
}

// AppendIDs gives the members in order, across words.
func TestBitsetAppendIDs(t *testing.T) {
	var s Bitset
	want := []uint32{0, 1, 63, 64, 65, 127, 1000, 4095}
	for _, id := range want {
		s.Set(id)
	}
	got := s.AppendIDs([]uint32{7})
	if !slices.Equal(got, append([]uint32{7}, want...)) {
		t.Errorf("AppendIDs = %v, want 7 then %v", got, want)
	}
}
