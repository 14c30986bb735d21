package graph

import (
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// fileBlocks reads a file a fixed-size block at a time with pread and keeps at most
// max blocks: the spilled id table and sizes files are read so, their pages in the
// page cache and out of the process. Not safe for concurrent use, but for read,
// which touches no state.
type fileBlocks struct {
	f     *os.File
	block int   // bytes a block
	size  int64 // bytes in the file
	max   func() int
	m     map[int][]byte
}

func newFileBlocks(f *os.File, block int, size int64, max func() int) *fileBlocks {
	return &fileBlocks{f: f, block: block, size: size, max: max, m: map[int][]byte{}}
}

// get returns block b (the last one may be shorter), read or kept.
func (c *fileBlocks) get(b int) ([]byte, error) {
	if blk, ok := c.m[b]; ok {
		return blk, nil
	}
	blk, err := c.read(b, c.evict())
	if err != nil {
		return nil, err
	}
	c.m[b] = blk
	return blk, nil
}

// evict makes room for a block and returns the buffer it frees (nil: none).
func (c *fileBlocks) evict() []byte {
	if len(c.m) < c.max() {
		return nil
	}
	for old, buf := range c.m { // an arbitrary one: map order
		delete(c.m, old)
		return buf
	}
	return nil
}

// read reads block b into buf (grown as needed) without keeping it.
func (c *fileBlocks) read(b int, buf []byte) ([]byte, error) {
	n := int(min(int64(c.block), c.size-int64(b)*int64(c.block)))
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := unix.Pread(int(c.f.Fd()), buf, int64(b)*int64(c.block)); err != nil {
		return nil, err
	}
	return buf, nil
}

// keep keeps a copy of block b, read with read.
func (c *fileBlocks) keep(b int, blk []byte) {
	if _, ok := c.m[b]; !ok {
		c.m[b] = append(c.evict()[:0], blk...)
	}
}
