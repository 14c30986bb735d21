package graph

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// idTable maps the digests of listed blobs to their ids by the first 64 bits of the
// digest and the id: 16 bytes a blob in memory, 12 on disk. Digests that are not blobs (references to
// missing data) are few and live in an exact map.
//
// Up to spillAt blobs the table is held in memory and sorted once the blob store is
// listed. Beyond, it is written in sorted runs to files in the index directory and
// merged into one sorted file when sealed; lookups then read 768-byte blocks of it
// with pread, found through the first key of every block (8 bytes per 64 blobs:
// 12.5 MB at 100M), and keep a bounded number of blocks. The memory of a scan so
// stops growing with the blob store: at 100M blobs the table alone would be 1.2 GB.
//
// Blobs sharing a 64-bit prefix (chance about n²/2^65) are resolved exactly. A
// missing digest that shares a prefix with a listed blob (about m·n/2^64) maps to that
// blob: it can only make a blob look referenced, never free one.
type idTable struct {
	dir     string // where runs spill; "" holds everything in memory
	spillAt int    // entries held before a run is written (0: defaultSpillAt)

	// Entries not yet written; sorted, the table itself when nothing spilled.
	pending []idEntry
	runs    []string

	sealed bool
	exact  map[digest.Digest]uint32
	file   *idFile   // the merged table, when runs were written
	near   []idEntry // keys prefetch resolved from file, sorted
}

type idEntry struct {
	key uint64
	id  uint32
}

func byKey(a, b idEntry) int { return cmp.Compare(a.key, b.key) }

func entryKey(e idEntry) uint64 { return e.key }

const (
	idRecord = 12 // key u64, id u32
	idBlock  = 64 // records a block of the merged file: what a lookup reads (768 bytes)
)

// defaultSpillAt keeps registries of up to two million blobs in memory (32 MiB, and
// a quarter more while the array grows): below it lookups cost nothing; above, the
// runs are that size. It is the share of a 256 MiB memory limit that spillFor gives.
var defaultSpillAt = 2 << 20

// spillFor returns how many entries the table holds in memory under the Go memory
// limit: an eighth of it, so that a larger --memory-limit keeps larger registries'
// lookups in memory (a lookup in a spilled table costs a pread about half the time).
func spillFor(limit int64) int {
	if limit <= 0 || limit == math.MaxInt64 {
		return defaultSpillAt
	}
	return int(min(max(limit/8/16, 1<<20), 64<<20))
}

// prefix64 returns the first 64 bits of d's hex, or false when d is not hex.
func prefix64(d digest.Digest) (uint64, bool) {
	enc := d.Encoded()
	if len(enc) < 16 {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(enc[:16])); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

func (t *idTable) addBlob(d digest.Digest, id uint32) error {
	k, ok := prefix64(d)
	if !ok || d.Algorithm() != digest.SHA256 {
		t.addExact(d, id)
		return nil
	}
	t.pending = append(t.pending, idEntry{k, id})
	if t.dir != "" && len(t.pending) >= cmp.Or(t.spillAt, defaultSpillAt) {
		return t.writeRun()
	}
	return nil
}

func (t *idTable) addExact(d digest.Digest, id uint32) {
	if t.exact == nil {
		t.exact = map[digest.Digest]uint32{}
	}
	t.exact[d] = id
}

// writeRun sorts the pending entries into a run file and empties them, keeping
// their array for the next run.
func (t *idTable) writeRun() (err error) {
	f, err := os.CreateTemp(t.dir, spillPrefix+"run-")
	if err != nil {
		return fmt.Errorf("spill the blob id table: %w", err)
	}
	t.runs = append(t.runs, f.Name())
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("spill the blob id table to %s: %w", f.Name(), cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	var rec [idRecord]byte
	slices.SortFunc(t.pending, byKey)
	for _, e := range t.pending {
		binary.BigEndian.PutUint64(rec[:8], e.key)
		binary.BigEndian.PutUint32(rec[8:], e.id)
		if _, err := w.Write(rec[:]); err != nil {
			return fmt.Errorf("spill the blob id table to %s: %w", f.Name(), err)
		}
	}
	t.pending = t.pending[:0]
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spill the blob id table to %s: %w", f.Name(), err)
	}
	return nil
}

// spillPrefix names the files a build spills; removeSpills clears what a killed
// build left.
const spillPrefix = "build-ids-"

func removeSpills(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, spillPrefix+"*"))
	for _, p := range old {
		os.Remove(p)
	}
}

// seal sorts the table. Colliding prefixes are moved to the exact map, resolved
// with digestOf, and their slots are zeroed so lookups go there.
func (t *idTable) seal(digestOf func(id uint32) (digest.Digest, error)) error {
	t.sealed = true
	if len(t.runs) > 0 {
		if len(t.pending) > 0 {
			if err := t.writeRun(); err != nil {
				return err
			}
		}
		t.pending = nil
		return t.merge(digestOf)
	}
	p := t.pending
	slices.SortFunc(p, byKey)
	for i := 1; i < len(p); i++ {
		if p[i].key != p[i-1].key {
			continue
		}
		for _, j := range []int{i - 1, i} {
			if p[j].id == 0 {
				continue
			}
			d, err := digestOf(p[j].id)
			if err != nil {
				return err
			}
			t.addExact(d, p[j].id)
			p[j].id = 0
		}
	}
	return nil
}

// lookup returns the id of d, or 0.
func (t *idTable) lookup(d digest.Digest) (uint32, error) {
	if id, ok := t.exact[d]; ok {
		return id, nil
	}
	k, ok := prefix64(d)
	if !ok || d.Algorithm() != digest.SHA256 {
		return 0, nil
	}
	if t.file != nil {
		if id, ok := t.nearID(k); ok {
			return id, nil // 0 when the prefix collided, as below
		}
		return t.file.lookup(k)
	}
	i := lastAtMost(t.pending, entryKey, k)
	if i < 0 || t.pending[i].key != k {
		return 0, nil
	}
	return t.pending[i].id, nil // 0 when the prefix collided and d is not among the exact ones
}

// close removes the table's files.
func (t *idTable) close() {
	if t.file != nil {
		t.file.f.Close()
		os.Remove(t.file.f.Name())
		t.file = nil
	}
	for _, r := range t.runs {
		os.Remove(r)
	}
	t.runs = nil
}

// idFile is the merged table on disk, read a block at a time with pread and kept in
// a bounded cache. (Mapped instead, its pages would count as the process's memory;
// dropped from the mapping to bound that, each lookup faults in 64 KiB around it:
// three times a pread's cost here.)
type idFile struct {
	f      *os.File
	n      int64    // records
	firsts []uint64 // the first key of each block

	mu     sync.Mutex
	blocks *fileBlocks // at most idCachedBlocks
	last   int         // the block of the last lookup: links come in digest order
	lastB  []byte
}

// idCachedBlocks bounds the blocks kept: 8 MiB. References and layer links are
// looked up in batches (prefetch); what comes here is tags, revisions and index
// children.
var idCachedBlocks = 8 << 20 / (idBlock * idRecord)

// runReader reads one run's records in order.
type runReader struct {
	r   *bufio.Reader
	f   *os.File
	key uint64
	id  uint32
}

func (r *runReader) next() (bool, error) {
	var rec [idRecord]byte
	if _, err := io.ReadFull(r.r, rec[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("read the spilled blob id table %s: %w", r.f.Name(), err)
	}
	r.key, r.id = binary.BigEndian.Uint64(rec[:8]), binary.BigEndian.Uint32(rec[8:])
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge merges the runs into one sorted file and removes them.
func (t *idTable) merge(digestOf func(id uint32) (digest.Digest, error)) (err error) {
	out, err := os.CreateTemp(t.dir, spillPrefix+"table-")
	if err != nil {
		return fmt.Errorf("spill the blob id table: %w", err)
	}
	file := &idFile{f: out, last: -1}
	var n int64 // records written
	var readers []*runReader
	defer func() {
		for _, r := range readers {
			r.f.Close()
		}
		for _, r := range t.runs {
			os.Remove(r)
		}
		t.runs = nil
		if err != nil {
			out.Close()
			os.Remove(out.Name())
			return
		}
		t.file = file
	}()
	h := runHeap{}
	for _, name := range t.runs {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("read the spilled blob id table: %w", err)
		}
		r := &runReader{r: bufio.NewReaderSize(f, 256<<10), f: f}
		readers = append(readers, r)
		ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, r)
		}
	}
	heap.Init(&h)
	w := bufio.NewWriterSize(out, 1<<20)
	var rec [idRecord]byte
	var prev uint64
	var collided []int64 // records whose key another record shares
	for len(h) > 0 {
		r := h[0]
		k, id := r.key, r.id
		if n > 0 && k == prev {
			if len(collided) == 0 || collided[len(collided)-1] != n-1 {
				collided = append(collided, n-1)
			}
			collided = append(collided, n)
		}
		if n%idBlock == 0 {
			file.firsts = append(file.firsts, k)
		}
		binary.BigEndian.PutUint64(rec[:8], k)
		binary.BigEndian.PutUint32(rec[8:], id)
		if _, err := w.Write(rec[:]); err != nil {
			return fmt.Errorf("spill the blob id table to %s: %w", out.Name(), err)
		}
		n++
		prev = k
		ok, err := r.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spill the blob id table to %s: %w", out.Name(), err)
	}
	// Colliding prefixes are rare: resolve them exactly and zero their ids in place.
	for _, at := range collided {
		if _, err := out.ReadAt(rec[:], at*idRecord); err != nil {
			return fmt.Errorf("read the spilled blob id table %s: %w", out.Name(), err)
		}
		id := binary.BigEndian.Uint32(rec[8:])
		d, err := digestOf(id)
		if err != nil {
			return err
		}
		t.addExact(d, id)
		if _, err := out.WriteAt(make([]byte, 4), at*idRecord+8); err != nil {
			return fmt.Errorf("spill the blob id table to %s: %w", out.Name(), err)
		}
	}
	file.firsts, file.n = slices.Clip(file.firsts), n
	file.blocks = newFileBlocks(out, idBlock*idRecord, n*idRecord, func() int { return idCachedBlocks })
	return nil
}

// lookup returns the id of the blob with key k, or 0.
func (f *idFile) lookup(k uint64) (uint32, error) {
	b := f.blockOf(k)
	if b < 0 {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	blk, err := f.block(b)
	if err != nil {
		return 0, err
	}
	return findInBlock(blk, k), nil
}

// blockOf returns the last block whose first key is at most k (-1: none).
func (f *idFile) blockOf(k uint64) int {
	return lastAtMost(f.firsts, func(k uint64) uint64 { return k }, k)
}

// lastAtMost returns the index of the last element of s, sorted by key, whose key is
// at most k (-1: none). Keys are digest prefixes, spread evenly: the place is
// guessed from k's place in the key space and found by galloping out from the
// guess. A binary search over 100M keys, or 1.5M blocks' first keys, missed the CPU
// cache on nearly every step.
func lastAtMost[E any](s []E, key func(E) uint64, k uint64) int {
	n := len(s)
	if n == 0 || key(s[0]) > k {
		return -1
	}
	g, _ := bits.Mul64(k, uint64(n)) // k / 2^64 * n
	lo, hi := int(g), int(g)+1       // find lo <= answer < hi
	for step := 1; lo > 0 && key(s[lo]) > k; step *= 2 {
		hi, lo = lo, max(lo-step, 0)
	}
	for step := 1; hi < n && key(s[hi]) <= k; step *= 2 {
		lo, hi = hi, min(hi+step, n)
	}
	// Binary search in [lo, hi): s[lo] <= k, and s[hi] > k or hi == n.
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if key(s[mid]) <= k {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// block returns block b's records, read or kept; f.mu is held.
func (f *idFile) block(b int) ([]byte, error) {
	if b == f.last {
		return f.lastB, nil
	}
	blk, err := f.blocks.get(b)
	if err != nil {
		return nil, fmt.Errorf("read the spilled blob id table %s: %w", f.f.Name(), err)
	}
	f.last, f.lastB = b, blk
	return blk, nil
}

// Batched lookups. A build resolves a manifest's references, and layer links, one at
// a time as they come: in random digest order, so that past the blocks kept each
// costs a pread (at 100M blobs the biggest share of a build's time). Gathered in
// batches and sorted, the keys of one batch fall many to a span of the file, read
// with one pread: prefetch resolves them so, and lookups until the next prefetch
// find them in memory.

// spanBlocks bounds one read of a batch (192 KiB); gapBlocks is how many unwanted
// blocks a read spans rather than start another (copying 768 bytes costs less than
// a call).
const (
	spanBlocks = 256
	gapBlocks  = 6
)

// prefetch resolves keys, sorted and distinct, from the spilled table and keeps the
// answers (0: no such blob) for lookup until the next prefetch. Without a spilled
// table it does nothing: lookups in memory cost less than sorting.
func (t *idTable) prefetch(keys []uint64) error {
	t.near = t.near[:0]
	if t.file == nil || len(keys) == 0 {
		return nil
	}
	t.near = slices.Grow(t.near, len(keys))
	ids := make([]uint32, len(keys))
	if err := t.file.lookupSorted(keys, ids); err != nil {
		return err
	}
	for i, k := range keys {
		t.near = append(t.near, idEntry{k, ids[i]})
	}
	return nil
}

// nearID returns what the last prefetch found for key k, and whether it looked k up.
func (t *idTable) nearID(k uint64) (uint32, bool) {
	if i := lastAtMost(t.near, entryKey, k); i >= 0 && t.near[i].key == k {
		return t.near[i].id, true
	}
	return 0, false
}

// lookupSorted sets ids[i] to the id of the blob with keys[i] (0: none); keys are
// sorted. The blocks they fall in are read in spans, in file order, by as many
// goroutines as there are cores, each a part of the keys: a 100M build's batch reads
// most of the table, copies out of the page cache that the builder waits for.
func (f *idFile) lookupSorted(keys []uint64, ids []uint32) error {
	parts := min(runtime.GOMAXPROCS(0), len(keys)/minLookupPart+1)
	if parts <= 1 {
		return f.lookupPart(keys, ids)
	}
	var g errgroup.Group
	for p := range parts {
		lo, hi := len(keys)*p/parts, len(keys)*(p+1)/parts
		g.Go(func() error { return f.lookupPart(keys[lo:hi], ids[lo:hi]) })
	}
	return g.Wait()
}

// minLookupPart is the fewest keys worth a goroutine of lookupSorted.
const minLookupPart = 4096

// lookupPart is lookupSorted in the calling goroutine.
func (f *idFile) lookupPart(keys []uint64, ids []uint32) error {
	blocks := make([]int, len(keys))
	for i, k := range keys {
		blocks[i] = f.blockOf(k)
	}
	var buf []byte
	for i := 0; i < len(keys); {
		if blocks[i] < 0 {
			ids[i] = 0
			i++
			continue
		}
		// A span: from key i's block to that of the last key near enough.
		first, j := blocks[i], i+1
		for j < len(keys) && blocks[j]-blocks[j-1] <= gapBlocks && blocks[j]-first < spanBlocks {
			j++
		}
		off := int64(first) * idBlock * idRecord
		n := min(int64(blocks[j-1]-first+1)*idBlock*idRecord, f.n*idRecord-off)
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := unix.Pread(int(f.f.Fd()), buf, off); err != nil {
			return fmt.Errorf("read the spilled blob id table %s: %w", f.f.Name(), err)
		}
		for ; i < j; i++ {
			at := (blocks[i] - first) * idBlock * idRecord
			ids[i] = findInBlock(buf[at:min(at+idBlock*idRecord, len(buf))], keys[i])
		}
	}
	return nil
}

// findInBlock returns the id of key k in blk, sorted records, or 0.
func findInBlock(blk []byte, k uint64) uint32 {
	n := len(blk) / idRecord
	lo, hi := 0, n // the first record with a key >= k
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if binary.BigEndian.Uint64(blk[mid*idRecord:]) < k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n || binary.BigEndian.Uint64(blk[lo*idRecord:]) != k {
		return 0
	}
	return binary.BigEndian.Uint32(blk[lo*idRecord+8:])
}
