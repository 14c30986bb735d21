package graph

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// packFile holds the index's bulk values (id chunks, layer-link runs, large reference
// lists) in a plain file beside badger, which keeps a 12-byte pointer to each. Badger
// maps its tables and value logs into memory: every byte written or read there stays
// resident in the process, and at ten million blobs the id records alone are half a
// gigabyte. Read with pread, the same bytes sit in the page cache, where the kernel can
// drop them, and not in the process.
//
// A stored value is a tag byte, then either the value (packInline) or its offset u64,
// length u32 and CRC-32C u32 in the file (packFar): small values are not worth a
// read. Badger checks its own blocks; the checksum makes a damaged pack value an
// error (ErrDamaged), never a wrong graph.
type packFile struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	size    int64 // bytes appended
	flushed int64 // bytes written through to f
}

const (
	packInline byte = 0
	packFar    byte = 1

	packMinFar = 64 // values shorter than this stay in badger
	packRefLen = 17
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func openPacks(dir string) (*packFile, error) { return openPackFile(dir, "packs") }

// openPackFile opens (creating) the pack file called file in dir.
func openPackFile(dir, file string) (*packFile, error) {
	name := filepath.Join(dir, file)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", name, err)
	}
	end, err := f.Seek(0, io.SeekEnd) // values are appended
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open index %s: %w", name, err)
	}
	return &packFile{f: f, w: bufio.NewWriterSize(f, 1<<20), size: end, flushed: end}, nil
}

// reset empties the file, when the graph it holds values of is dropped.
func (p *packFile) reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Reset(p.f)
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("clear index %s: %w", p.f.Name(), err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("clear index %s: %w", p.f.Name(), err)
	}
	p.size, p.flushed = 0, 0
	return nil
}

// put stores v and returns what badger keeps for it.
func (p *packFile) put(v []byte) ([]byte, error) {
	if len(v) < packMinFar {
		return append([]byte{packInline}, v...), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ref := make([]byte, packRefLen)
	ref[0] = packFar
	binary.BigEndian.PutUint64(ref[1:], uint64(p.size))
	binary.BigEndian.PutUint32(ref[9:], uint32(len(v)))
	binary.BigEndian.PutUint32(ref[13:], crc32.Checksum(v, castagnoli))
	if _, err := p.w.Write(v); err != nil {
		return nil, fmt.Errorf("write index %s: %w", p.f.Name(), err)
	}
	p.size += int64(len(v))
	return ref, nil
}

// get returns the value stored as ref, reading into buf when it is far.
func (p *packFile) get(ref, buf []byte) ([]byte, error) {
	if len(ref) == 0 {
		return nil, fmt.Errorf("%w: an index value is empty", ErrDamaged)
	}
	if ref[0] == packInline {
		return append(buf[:0], ref[1:]...), nil
	}
	if ref[0] != packFar || len(ref) != packRefLen {
		return nil, fmt.Errorf("%w: an index value has an unknown encoding (tag %d)", ErrDamaged, ref[0])
	}
	off, n := int64(binary.BigEndian.Uint64(ref[1:])), int64(binary.BigEndian.Uint32(ref[9:]))
	if err := p.flushTo(off + n); err != nil {
		return nil, err
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := p.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("%w: read %s at %d (+%d): %v", ErrDamaged, p.f.Name(), off, n, err)
	}
	if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(ref[13:]) {
		return nil, fmt.Errorf("%w: %s at %d (+%d) does not match its checksum", ErrDamaged, p.f.Name(), off, n)
	}
	return buf, nil
}

// flushTo writes buffered values through to the file when end is not there yet.
func (p *packFile) flushTo(end int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if end <= p.flushed {
		return nil
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("write index %s: %w", p.f.Name(), err)
	}
	p.flushed = p.size
	return nil
}

// sync makes what was put durable, before the index records that it is complete.
func (p *packFile) sync() error {
	p.mu.Lock()
	err := p.w.Flush()
	p.flushed = p.size
	p.mu.Unlock()
	if err == nil {
		err = p.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write index %s: %w", p.f.Name(), err)
	}
	return nil
}

func (p *packFile) close() error {
	err := p.sync()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
