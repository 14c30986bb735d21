package memlimit

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/regsweep/regsweep/internal/spill"
)

// fileResident returns the process's file-backed resident bytes (RssFile).
func fileResident() (int64, bool) {
	mapped, _, ok := resident()
	return mapped, ok
}

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
	after := debug.SetMemoryLimit(-1)
	if after <= got {
		t.Errorf("limit stayed at %d MiB after the mapping went", after>>20)
	}
	// What maps between two looks has a margin of its own.
	if after > budget-budget/marginShare {
		t.Errorf("limit %d MiB with a %d MiB budget: want a margin of %d MiB kept", after>>20, budget>>20, budget/marginShare>>20)
	}
	cancel()
	if debug.SetMemoryLimit(-1) == math.MaxInt64 {
		t.Error("limit was cleared")
	}
}

// Pages of a mapped table leave the process when trimmed and read back the same;
// other mapped files stay.
func TestTrimTables(t *testing.T) {
	if _, ok := fileResident(); !ok {
		t.Skip("no /proc/self/status RssFile here")
	}
	const size = 64 << 20
	mapFile := func(name string) []byte {
		t.Helper()
		f, err := os.Create(filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Munmap(m) })
		for i := 0; i < size; i += 4096 {
			m[i] = byte(i >> 12)
		}
		return m
	}
	table := mapFile("000001.sst")
	other := mapFile("packs")
	before, _ := fileResident()
	if trimTables() < 1 {
		t.Fatal("no table mapping trimmed")
	}
	after, _ := fileResident()
	if before-after < size/2 {
		t.Errorf("file-backed resident memory %d MiB -> %d MiB: the table's %d MiB did not leave", before>>20, after>>20, size>>20)
	}
	if before-after > size+size/8 {
		t.Errorf("file-backed resident memory fell by %d MiB: more than the table", (before-after)>>20)
	}
	for i := 0; i < size; i += 4096 {
		if table[i] != byte(i>>12) || other[i] != byte(i>>12) {
			t.Fatalf("byte at %d changed after the trim", i)
		}
	}
}

// A plan's spilled array leaves the process when trimmed, although its file is
// already unlinked, and reads back the same.
func TestTrimSpill(t *testing.T) {
	if _, ok := fileResident(); !ok {
		t.Skip("no /proc/self/status RssFile here")
	}
	const n = 16 << 20 // 64 MiB of uint32
	a, err := spill.New[uint32](t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	items := a.Items()
	for i := range items {
		items[i] = uint32(i)
	}
	before, _ := fileResident()
	if trimTables() < 1 {
		t.Fatal("no spill mapping trimmed")
	}
	after, _ := fileResident()
	if before-after < n*4/2 {
		t.Errorf("file-backed resident memory %d MiB -> %d MiB: the spilled array's %d MiB did not leave", before>>20, after>>20, n*4>>20)
	}
	for i, v := range items {
		if v != uint32(i) {
			t.Fatalf("item %d is %d after the trim", i, v)
		}
	}
}

// Over the budget the limiter collects and returns the freed heap itself, at most
// once a second in the process however many limiters run; under the budget, or
// with a live heap past the limit (no collection makes that smaller), never.
func TestOverBudgetFreesMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	_, total, ok := resident()
	if !ok {
		t.Skip("no /proc/self/status here")
	}
	var calls atomic.Int64
	defer func(f func()) { freeOSMemory = f }(freeOSMemory)
	freeOSMemory = func() { calls.Add(1) }
	// run returns the calls, and the most a once-a-second rate allows in the time
	// it took (a loaded machine stretches the sleeps).
	run := func(budget int64, limiters int, d time.Duration) (n, most int64) {
		calls.Store(0)
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		for range limiters {
			Start(ctx, budget, 10*time.Millisecond)
		}
		time.Sleep(d)
		cancel()
		time.Sleep(50 * time.Millisecond) // the goroutines see it
		return calls.Load(), int64(time.Since(start)/time.Second) + 1
	}
	if n, _ := run(total*4, 1, 300*time.Millisecond); n != 0 {
		t.Errorf("freed memory %d times under the budget", n)
	}
	if n, most := run(total/2, 1, 1500*time.Millisecond); n < 1 || n > most {
		t.Errorf("freed memory %d times over the budget: want once a second, at most %d", n, most)
	}
	if n, most := run(total/2, 20, 1500*time.Millisecond); n > most {
		t.Errorf("20 limiters freed memory %d times: want once a second in the process, at most %d", n, most)
	}
	keep := make([]byte, 8<<20) // live through a collection: past a 1 MiB budget
	runtime.GC()
	defer runtime.KeepAlive(keep)
	if n, _ := run(1<<20, 1, 1500*time.Millisecond); n != 0 {
		t.Errorf("freed memory %d times for a live heap of %d MiB past a 1 MiB budget", n, liveHeap()>>20)
	}
}
