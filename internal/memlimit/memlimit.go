// Package memlimit holds a process's resident memory near a budget. The Go runtime's
// own limit counts only what it allocates; the pages of files the process maps (its
// binary, and badger's index tables) are resident too, and count against a container's
// memory just the same. So the runtime is given the budget minus those pages, and the
// split is updated as the index grows.
package memlimit

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regsweep/regsweep/internal/spill"
)

// minShare is the least part of the budget the Go runtime keeps whatever is mapped:
// below it, collecting garbage would cost more than the pages it makes room for.
const minShare = 2 // 1/minShare of the budget

// marginShare is the part of the budget kept for what is mapped between two looks
// (a plan streaming the index): at 100M blobs the peak passed a 1 GiB budget by 15
// MiB without it.
const marginShare = 32 // 1/marginShare of the budget

// tableShare is the part of the budget mapped index tables may hold resident
// before their pages are dropped (trimTables).
const tableShare = 8 // 1/tableShare of the budget

// Start sets the Go memory limit to budget less the file-backed resident memory, and
// keeps it so every interval until ctx ends. Without /proc it sets budget as is.
// Where the file-backed memory passes an eighth of the budget, the pages of mapped
// badger tables are dropped from the process first (trimTables): badger writes and
// reads its tables through memory maps, and at 100M blobs they held 350 MB resident.
//
// Over the budget all the same, while what the last collection found live fits
// under the Go limit, it collects at once and returns what is free to the system: a
// lower limit only acts when Go allocates, and a run that has stopped allocating
// would keep its garbage resident beside growing maps. At most once a second in the
// process, however many limiters run (tests start one a command); never for a live
// heap past the budget, which no collection makes smaller.
func Start(ctx context.Context, budget int64, every time.Duration) {
	free := freeOSMemory
	set := func() bool {
		mapped, total, ok := resident()
		if ok && mapped > budget/tableShare && trimTables() > 0 {
			mapped, total, _ = resident()
		}
		limit := max(budget-mapped-budget/marginShare, budget/minShare)
		debug.SetMemoryLimit(limit)
		if ok && total > budget && liveHeap() < limit {
			now, last := time.Now().UnixNano(), lastFree.Load()
			if now-last > int64(time.Second) && lastFree.CompareAndSwap(last, now) {
				free()
			}
		}
		return ok
	}
	if !set() {
		return
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
}

// freeOSMemory is debug.FreeOSMemory; tests count the calls.
var freeOSMemory = debug.FreeOSMemory

// lastFree is when a limiter last called freeOSMemory (Unix nanoseconds).
var lastFree atomic.Int64

// liveHeap returns the heap the last collection found live.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// Every is how often Start looks again: a scan streaming the index maps its
// tables' pages faster than a second lets them pile up (reading the two /proc files
// costs microseconds).
const Every = 200 * time.Millisecond

// resident returns the process's file-backed and total resident bytes (RssFile,
// VmRSS).
func resident() (mapped, total int64, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, false
	}
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		for _, f := range []struct {
			name string
			v    *int64
		}{{"RssFile:", &mapped}, {"VmRSS:", &total}} {
			if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(f.name)); ok {
				fs := bytes.Fields(v)
				if len(fs) == 2 && string(fs[1]) == "kB" {
					if kb, err := strconv.ParseInt(string(fs[0]), 10, 64); err == nil {
						*f.v = kb << 10
						found++
					}
				}
			}
		}
	}
	return mapped, total, found == 2
}

// trimTables asks the kernel to page out the resident pages of every mapped badger
// table (*.sst) and spill file (a plan's blob items) and returns how many mappings it asked for. MADV_PAGEOUT writes dirty
// pages back and a later read maps them again, so no data is lost; and it is safe if
// badger unmaps a table between the read of /proc/self/maps and the call and the
// range is reused, which MADV_DONTNEED is not (it would zero anonymous memory).
func trimTables() int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		// start-end perms offset dev inode path
		if len(f) < 6 || !(bytes.HasSuffix(f[5], []byte(".sst")) || bytes.HasSuffix(f[5], []byte(spill.Suffix))) || len(f[1]) < 4 || f[1][3] != 's' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e == 0 {
			n++
		}
	}
	return n
}
