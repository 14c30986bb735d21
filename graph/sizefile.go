package graph

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// sizeSource gives a blob's size: held in memory (Sizes) or, for registries whose
// sizes would take more than an eighth of the memory limit, in a file (sizeFile).
type sizeSource interface {
	Lookup(id uint32) (int64, bool)
	Of(id uint32) int64
	// OfSorted sets out[i] to the size of ids[i], 0 when unknown; ids ascend.
	OfSorted(ids []uint32, out []int64) error
}

// sizeFile holds a loaded graph's blob sizes in a file beside the index, 4 bytes an
// id as Sizes keeps them, read with pread a 4 KiB block at a time through a bounded
// cache; the rare sizes of 4 GiB and more stay in memory. The file is unlinked as
// soon as it is written: its space returns when the graph is collected or the
// process ends, however it ends.
type sizeFile struct {
	f   *os.File
	n   uint32 // ids held: 0 ... n-1
	big map[uint32]int64

	mu     sync.Mutex
	blocks *fileBlocks // at most sizeCachedBlocks
}

const sizeBlock = 1024 // ids a block

// sizeCachedBlocks bounds the blocks kept: 32 MiB.
var sizeCachedBlocks = 8192

// sizesInMemory reports whether sizes for ids up to maxID fit an eighth of the Go
// memory limit.
func sizesInMemory(maxID uint32) bool {
	limit := debug.SetMemoryLimit(-1)
	return limit <= 0 || limit == math.MaxInt64 || int64(maxID)*4 <= limit/8
}

// writeSizeFile writes the sizes each(fn) gives, in increasing id order, to a file
// in dir.
func writeSizeFile(dir string, maxID uint32, each func(fn func(id uint32, size int64) error) error) (*sizeFile, error) {
	f, err := os.CreateTemp(dir, "graph-sizes-")
	if err != nil {
		return nil, fmt.Errorf("write blob sizes beside the index: %w", err)
	}
	os.Remove(f.Name()) // open: readable until closed
	z := &sizeFile{f: f, n: maxID + 1}
	z.blocks = newFileBlocks(f, sizeBlock*4, int64(z.n)*4, func() int { return sizeCachedBlocks })
	w := bufio.NewWriterSize(f, 1<<20)
	var next uint32 // the id the file reaches
	var rec [4]byte
	put := func(v uint32) error {
		binary.LittleEndian.PutUint32(rec[:], v)
		_, err := w.Write(rec[:])
		next++
		return err
	}
	err = each(func(id uint32, size int64) error {
		if id < next || id > maxID {
			return fmt.Errorf("%w: blob id %d out of order or beyond the index's max id %d", ErrDamaged, id, maxID)
		}
		for next < id {
			if err := put(0); err != nil {
				return err
			}
		}
		if size >= 0 && size < bigSize-1 {
			return put(uint32(size + 1))
		}
		if z.big == nil {
			z.big = map[uint32]int64{}
		}
		z.big[id] = size
		return put(bigSize)
	})
	for err == nil && next <= maxID {
		err = put(0)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write blob sizes beside the index: %w", err)
	}
	return z, nil
}

// Lookup returns id's size and whether it is known.
func (z *sizeFile) Lookup(id uint32) (int64, bool) {
	if id >= z.n {
		return 0, false
	}
	z.mu.Lock()
	blk, err := z.blocks.get(int(id / sizeBlock))
	if err != nil {
		z.mu.Unlock()
		// The file was written by this process a moment ago: a failed read is
		// the disk failing under it, and a size read as unknown could only
		// under-report bytes, never change what is deleted. Say so loudly.
		panic(fmt.Sprintf("read blob sizes beside the index in %s: %v (check that disk; run again with --memory-limit large enough to hold 4 bytes a blob in memory)", filepath.Dir(z.f.Name()), err))
	}
	v := binary.LittleEndian.Uint32(blk[id%sizeBlock*4:])
	z.mu.Unlock()
	switch v {
	case 0:
		return 0, false
	case bigSize:
		return z.big[id], true
	}
	return int64(v) - 1, true
}

// One read of OfSorted covers at most sizeSpan blocks (1 MiB), and goes on past a
// gap of at most sizeGap blocks without ids: a pread costs about what copying a few
// blocks more does.
const (
	sizeSpan = 256
	sizeGap  = 6
)

// OfSorted sets out[i] to the size of ids[i], 0 when unknown. Ids ascend, so the
// file is read once in spans of up to 1 MiB rather than a block per lookup: a
// repository's sizes at 100M blobs are a million ids spread over the whole file.
func (z *sizeFile) OfSorted(ids []uint32, out []int64) error {
	var buf []byte
	for i := 0; i < len(ids); {
		if ids[i] >= z.n {
			out[i] = 0
			i++
			continue
		}
		// A span: from ids[i]'s block to that of the last id near enough; sparse
		// ids cost a pread of one block each, as Lookup does.
		first := ids[i] / sizeBlock
		j := i + 1
		for j < len(ids) && ids[j] < z.n && ids[j]/sizeBlock-ids[j-1]/sizeBlock <= sizeGap && ids[j]/sizeBlock-first < sizeSpan {
			j++
		}
		off := int64(first) * sizeBlock * 4
		n := min(int64(ids[j-1]/sizeBlock-first+1)*sizeBlock*4, int64(z.n)*4-off)
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := unix.Pread(int(z.f.Fd()), buf, off); err != nil {
			return fmt.Errorf("read blob sizes beside the index in %s: %w (check that disk)", filepath.Dir(z.f.Name()), err)
		}
		for ; i < j; i++ {
			switch v := binary.LittleEndian.Uint32(buf[int64(ids[i])*4-off:]); v {
			case 0:
				out[i] = 0
			case bigSize:
				out[i] = z.big[ids[i]]
			default:
				out[i] = int64(v) - 1
			}
		}
	}
	return nil
}

// Of returns id's size, 0 when unknown.
func (z *sizeFile) Of(id uint32) int64 {
	n, _ := z.Lookup(id)
	return n
}
