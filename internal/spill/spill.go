// Package spill keeps large arrays of plain values in files mapped into memory, so
// that what a run holds per blob need not stay resident: the pages are the kernel's
// to write back and drop (internal/memlimit pages them out near the budget), and a
// read maps them again. The code using the array sees an ordinary slice.
package spill

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Suffix ends the name of every spill file; internal/memlimit finds their mappings
// by it.
const Suffix = ".regsweep-spill"

// Array is n values of T in a file mapped shared. The file is unlinked once mapped:
// it goes with the mapping, also when the process dies.
type Array[T any] struct {
	mem   []byte
	items []T
}

// New maps an array of n zero values of T in a new file in dir. Its blocks are
// reserved first (fallocate), so a full disk is an error here and never a fault while
// the array is written. ErrUnsupported: dir's file system cannot reserve blocks (the
// caller keeps the array in memory). T must hold no pointers: the garbage collector
// does not see this memory.
func New[T any](dir string, n int) (*Array[T], error) {
	var zero T
	if hasPointers(reflect.TypeOf(zero)) {
		return nil, fmt.Errorf("spill: %T holds pointers", zero)
	}
	size := int64(n) * int64(unsafe.Sizeof(zero))
	if n <= 0 || size == 0 {
		return &Array[T]{}, nil
	}
	f, err := os.CreateTemp(dir, "plan-*"+Suffix)
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	defer f.Close() // the mapping keeps the file open
	defer os.Remove(f.Name())
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("spill: reserve %d bytes in %s: %w (free space there, or point the index at a larger disk)", size, dir, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("spill: map %s: %w", f.Name(), err)
	}
	return &Array[T]{mem: mem, items: unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)}, nil
}

// ErrUnsupported says the file system cannot reserve a spill file's blocks.
var ErrUnsupported = errors.New("spill: file system cannot reserve blocks")

// Items returns the array as a slice; it is valid until Close.
func (a *Array[T]) Items() []T { return a.items }

// Release drops the array's pages from the process; the next read maps them again
// from the page cache or the file. Writes are kept: in a shared file mapping a
// written page is the page cache's, and MADV_DONTNEED only unmaps it. Writers call
// it every so often, so that what they wrote leaves the process's resident memory
// at once instead of at the memory limiter's next look.
func (a *Array[T]) Release() {
	if a == nil || a.mem == nil {
		return
	}
	unix.Madvise(a.mem, unix.MADV_DONTNEED)
}

// Close unmaps the array. Its slice must not be used after.
func (a *Array[T]) Close() error {
	if a == nil || a.mem == nil {
		return nil
	}
	err := unix.Munmap(a.mem)
	a.mem, a.items = nil, nil
	return err
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}
