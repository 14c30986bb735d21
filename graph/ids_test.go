package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// idTableCase fills a table with n random blobs, plus groups of blobs sharing their
// first 64 bits (one straddling the block boundary of a spilled table), and checks
// every lookup, and that unknown digests, colliding or not, find nothing.
func idTableCase(t *testing.T, tab *idTable, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	mk := func(prefix string) digest.Digest {
		h := prefix
		for len(h) < 64 {
			h += fmt.Sprintf("%016x", rng.Uint64())
		}
		return digest.Digest("sha256:" + h[:64])
	}
	all := map[digest.Digest]uint32{}
	var order []digest.Digest
	add := func(d digest.Digest) {
		id := uint32(len(order) + 1)
		all[d] = id
		order = append(order, d)
		if err := tab.addBlob(d, id); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		add(mk(""))
		switch i {
		case n / 3: // three blobs sharing a prefix, in different runs
			add(mk("deadbeefcafef00d"))
		case n / 2, n - 2:
			add(mk("deadbeefcafef00d"))
		case n / 4: // a pair at the very end of the key space
			add(mk("ffffffffffffffff"))
			add(mk("ffffffffffffffff"))
		}
	}
	// A sha512 blob lives in the exact map.
	add("sha512:" + digest.Digest(strings.Repeat("ab", 64)))
	if err := tab.seal(func(i uint32) (digest.Digest, error) { return order[i-1], nil }); err != nil {
		t.Fatal(err)
	}
	for d, want := range all {
		got, err := tab.lookup(d)
		if err != nil || got != want {
			t.Fatalf("lookup(%s) = %d, %v; want %d", d, got, err, want)
		}
	}
	unknown := []digest.Digest{mk("deadbeefcafef00d"), mk("ffffffffffffffff"), mk(""), mk("0000000000000000"), "sha512:" + digest.Digest(strings.Repeat("cd", 64))}
	for _, d := range unknown {
		if got, err := tab.lookup(d); got != 0 || err != nil {
			t.Errorf("unknown digest %s = %d, %v; want 0", d, got, err)
		}
	}
	// Prefetched, all of them (spans of every block), a tenth (short gaps) and a
	// few (a read each), with the unknown ones: lookups answer from what prefetch
	// read, which must be the same.
	for _, share := range []float64{1, 0.1, 0.002} {
		var pick []digest.Digest
		for _, d := range order {
			if rng.Float64() < share {
				pick = append(pick, d)
			}
		}
		var keys []uint64
		for _, d := range append(pick, unknown...) {
			if k, ok := prefix64(d); ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		if err := tab.prefetch(slices.Compact(keys)); err != nil {
			t.Fatal(err)
		}
		if tab.file != nil && len(tab.near) == 0 {
			t.Fatal("prefetch kept nothing")
		}
		for _, d := range pick {
			if got, err := tab.lookup(d); got != all[d] || err != nil {
				t.Fatalf("prefetched %.3f: lookup(%s) = %d, %v; want %d", share, d, got, err, all[d])
			}
		}
		for _, d := range unknown {
			if got, err := tab.lookup(d); got != 0 || err != nil {
				t.Errorf("prefetched %.3f: unknown digest %s = %d, %v; want 0", share, d, got, err)
			}
		}
	}
}

func TestIDTableInMemory(t *testing.T) {
	idTableCase(t, &idTable{}, 5000)
}

func TestIDTableSpilled(t *testing.T) {
	// Three blocks kept: lookups evict and read again.
	defer func(n int) { idCachedBlocks = n }(idCachedBlocks)
	idCachedBlocks = 3
	for _, n := range []int{idBlock - 1, 5000, 3 * idBlock, 40000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			tab := &idTable{dir: dir, spillAt: min(97, n/2)}
			idTableCase(t, tab, n)
			if tab.file == nil {
				t.Fatal("a table beyond spillAt was not spilled")
			}
			if len(tab.file.blocks.m) > idCachedBlocks {
				t.Errorf("%d blocks kept, want at most %d", len(tab.file.blocks.m), idCachedBlocks)
			}
			if runs, _ := filepath.Glob(filepath.Join(dir, spillPrefix+"run-*")); len(runs) != 0 {
				t.Errorf("runs left after the merge: %v", runs)
			}
			tab.close()
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("files left after close: %v", left)
			}
		})
	}
}

// A straddling collision group: the same key at the end of one block and the start
// of the next must resolve exactly on both sides.
func TestIDTableSpilledCollisionAcrossBlocks(t *testing.T) {
	tab := &idTable{dir: t.TempDir(), spillAt: 50}
	var order []digest.Digest
	for i := 0; i < 2*idBlock; i++ {
		// Keys 0,1,...; a run of equal keys around the first block boundary.
		k := uint64(i)
		if i >= idBlock-2 && i <= idBlock+1 {
			k = idBlock - 2
		}
		d := digest.Digest(fmt.Sprintf("sha256:%016x%048x", k, i))
		order = append(order, d)
		if err := tab.addBlob(d, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.seal(func(i uint32) (digest.Digest, error) { return order[i-1], nil }); err != nil {
		t.Fatal(err)
	}
	defer tab.close()
	for i, d := range order {
		if got, err := tab.lookup(d); got != uint32(i+1) || err != nil {
			t.Errorf("lookup(%s) = %d, %v; want %d", d, got, err, i+1)
		}
	}
	if got, _ := tab.lookup(digest.Digest(fmt.Sprintf("sha256:%016x%048x", idBlock-2, 99999))); got != 0 {
		t.Errorf("unknown digest in the collision group = %d, want 0", got)
	}
}

func TestSpillFor(t *testing.T) {
	for _, c := range []struct {
		limit int64
		want  int
	}{
		{256 << 20, 2 << 20},
		{1 << 30, 8 << 20},
		{math.MaxInt64, defaultSpillAt},
		{16 << 20, 1 << 20},
		{64 << 30, 64 << 20},
	} {
		if got := spillFor(c.limit); got != c.want {
			t.Errorf("spillFor(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
}

// BenchmarkIDFileLookup looks up random blobs one at a time in a spilled table of
// 8M with 2% of its blocks kept: what a build's references cost before batches
// (BenchmarkIDFilePrefetch), and what tags and revisions cost now.
func BenchmarkIDFileLookup(b *testing.B) {
	const n = 8 << 20
	defer func(c int) { idCachedBlocks = c }(idCachedBlocks)
	idCachedBlocks = n / idBlock / 50
	benchLookups(b, &idTable{dir: b.TempDir(), spillAt: 1 << 20}, n)
}

// BenchmarkIDTableLookup looks up random blobs in a table of 2M held in memory: a
// build of up to two million blobs under the default limit.
func BenchmarkIDTableLookup(b *testing.B) {
	benchLookups(b, &idTable{}, 2<<20)
}

// benchLookups fills tab with n random blobs, seals it and times lookups of the
// first 64K, in the order they were added (random in the key space).
func benchLookups(b *testing.B, tab *idTable, n int) {
	keys := fillTable(b, tab, n)[:1<<16]
	defer tab.close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if id, err := tab.lookup(keys[i%len(keys)]); id == 0 || err != nil {
			b.Fatal(id, err)
		}
	}
}

// fillTable adds n random blobs to tab, seals it and returns their digests in the
// order added.
func fillTable(b *testing.B, tab *idTable, n int) []digest.Digest {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := make([]digest.Digest, n)
	for i := range ds {
		ds[i] = digest.Digest(fmt.Sprintf("sha256:%016x%048x", rng.Uint64(), i))
		if err := tab.addBlob(ds[i], uint32(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tab.seal(func(uint32) (digest.Digest, error) { return "", nil }); err != nil {
		b.Fatal(err)
	}
	return ds
}

// BenchmarkIDFilePrefetch resolves sorted batches of random blobs in a spilled table
// of 8M, a batch holding the share of the table that a build's batch of 256K
// references holds of 100M blobs (0.25%), and four times that; ns/op is a key's.
func BenchmarkIDFilePrefetch(b *testing.B) {
	const n = 8 << 20
	tab := &idTable{dir: b.TempDir(), spillAt: 1 << 20}
	var keys []uint64
	for _, d := range fillTable(b, tab, n) {
		k, _ := prefix64(d)
		keys = append(keys, k)
	}
	defer tab.close()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, share := range []int{400, 100} {
		b.Run(fmt.Sprintf("1in%d", share), func(b *testing.B) {
			batch := make([]uint64, n/share)
			for i := 0; b.Loop(); i++ {
				if i%len(batch) == 0 {
					b.StopTimer()
					for j := range batch {
						batch[j] = keys[rng.IntN(n)]
					}
					slices.Sort(batch)
					batch = slices.Compact(batch)
					b.StartTimer()
					if err := tab.prefetch(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:cap(batch)]
				}
			}
		})
	}
}
