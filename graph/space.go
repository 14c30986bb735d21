package graph

import (
	"errors"
	"fmt"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// ErrDiskFull is wrapped when the index's disk has less free space than the index
// needs. Badger writes its memtables and value logs through memory maps: a write
// that finds the disk full is a SIGBUS that kills the process, not an error. So
// the space is checked before writing and every few thousand entries after, and a
// run stops cleanly while badger still has room to work.
var ErrDiskFull = errors.New("the index disk is too full")

const (
	// workingSpace is what badger may write between two checks: memtables (two of
	// 4 MiB), a table being built, the value log's growth, the pack file's buffer.
	workingSpace = 64 << 20
	// BytesPerBlob is what the index takes for a blob with its links, about twice
	// what a scan of the synthetic registry measures (75-85 bytes): pack values
	// rewritten while a chunk fills, layer links in several repositories.
	BytesPerBlob = 160
)

// freeSpace returns the bytes available to this process on dir's filesystem.
var freeSpace = func(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// CheckSpace returns an error wrapping ErrDiskFull unless the index's disk has room
// for blobs more blobs and the working space.
func (x *Index) CheckSpace(blobs int) error {
	free, err := freeSpace(x.dir)
	if err != nil {
		return fmt.Errorf("free space of the index disk %s: %w", x.dir, err)
	}
	need := uint64(workingSpace) + uint64(max(blobs, 0))*BytesPerBlob
	if free < need {
		return fmt.Errorf("%w: %s free at %s, the index needs about %s (%d blobs × %d bytes and %s to work in): free space there, or pass --index DIR on a disk with room; a run stopped by this is finished by running it again",
			ErrDiskFull, humanize.IBytes(free), x.dir, humanize.IBytes(need), blobs, BytesPerBlob, humanize.IBytes(workingSpace))
	}
	return nil
}
