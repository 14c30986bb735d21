package memlimit

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"
)

func TestStartLeavesRoomForMappedFiles(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	before, ok := fileResident()
	if !ok {
		t.Skip("no /proc/self/status RssFile here")
	}
	if before <= 0 {
		t.Fatalf("file-backed resident memory %d: the test binary itself is mapped", before)
	}
	// Map and touch 64 MiB of a file: the limit must make room for it.
	f, err := os.Create(filepath.Join(t.TempDir(), "mapped"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	for i := 0; i < size; i += 4096 {
		m[i] = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const budget = 1 << 30
	Start(ctx, budget, 10*time.Millisecond)
	got := debug.SetMemoryLimit(-1)
	if got > budget-before-size/2 || got < budget/minShare {
		t.Errorf("Go memory limit %d MiB with a %d MiB budget and %d MiB mapped: want the budget less what is mapped", got>>20, budget>>20, (before+size)>>20)
	}
	// Unmapped, the room comes back at the next tick.
	syscall.Munmap(m)
	m = nil
	deadline := time.Now().Add(2 * time.Second)
	for debug.SetMemoryLimit(-1) <= got && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := debug.SetMemoryLimit(-1); after <= got {
		t.Errorf("limit stayed at %d MiB after the mapping went", after>>20)
	}
	cancel()
	if debug.SetMemoryLimit(-1) == math.MaxInt64 {
		t.Error("limit was cleared")
	}
}
