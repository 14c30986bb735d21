package graph

import (
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// fileBlocks reads a file a fixed-size block at a time with pread and keeps at most
// max blocks: the spilled id table and sizes files are read so, their pages in the
// page cache and out of the process. Not safe for concurrent use.
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
	var blk []byte
	if len(c.m) >= c.max() {
		for old, buf := range c.m { // an arbitrary one: map order
			delete(c.m, old)
			blk = buf
			break
		}
	}
	n := int(min(int64(c.block), c.size-int64(b)*int64(c.block)))
	blk = slices.Grow(blk[:0], n)[:n]
	if _, err := unix.Pread(int(c.f.Fd()), blk, int64(b)*int64(c.block)); err != nil {
		return nil, err
	}
	c.m[b] = blk
	return blk, nil
}
