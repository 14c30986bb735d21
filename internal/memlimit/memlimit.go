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
	"strconv"
	"time"
)

// minShare is the least part of the budget the Go runtime keeps whatever is mapped:
// below it, collecting garbage would cost more than the pages it makes room for.
const minShare = 2 // 1/minShare of the budget

// Start sets the Go memory limit to budget less the file-backed resident memory, and
// keeps it so every interval until ctx ends. Without /proc it sets budget as is.
func Start(ctx context.Context, budget int64, every time.Duration) {
	set := func() bool {
		mapped, ok := fileResident()
		debug.SetMemoryLimit(max(budget-mapped, budget/minShare))
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

// fileResident returns the process's file-backed resident bytes (RssFile).
func fileResident() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("RssFile:")); ok {
			f := bytes.Fields(v)
			if len(f) == 2 && string(f[1]) == "kB" {
				if kb, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}
