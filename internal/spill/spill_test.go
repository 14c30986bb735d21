package spill

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestArray(t *testing.T) {
	dir := t.TempDir()
	type item struct {
		raw  [32]byte
		size uint64
	}
	a, err := New[item](dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	items := a.Items()
	if len(items) != 1000 || cap(items) != 1000 {
		t.Fatalf("len %d cap %d, want 1000", len(items), cap(items))
	}
	for i := range items {
		if items[i] != (item{}) {
			t.Fatalf("item %d not zero", i)
		}
		items[i].raw[0], items[i].size = byte(i), uint64(i)
	}
	for i, it := range items {
		if it.raw[0] != byte(i) || it.size != uint64(i) {
			t.Fatalf("item %d reads back %v", i, it)
		}
	}
	// The file is gone from the directory at once: a crash leaves nothing behind.
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("spill file left in %s: %v", dir, es)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Items() != nil {
		t.Error("items still there after Close")
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestArrayRefusesPointers(t *testing.T) {
	if _, err := New[struct{ s string }](t.TempDir(), 10); err == nil {
		t.Error("an array of strings was mapped: the collector cannot see pointers there")
	}
	if _, err := New[[4]*int](t.TempDir(), 10); err == nil {
		t.Error("an array of pointers was mapped")
	}
}

func TestArrayNoDir(t *testing.T) {
	if _, err := New[uint64](t.TempDir()+"/missing", 10); err == nil {
		t.Error("spill into a missing directory succeeded")
	}
}

// Released pages leave the process and keep what was written.
func TestRelease(t *testing.T) {
	const n = 8 << 20 // 32 MiB of uint32
	a, err := New[uint32](t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	items := a.Items()
	for i := range items {
		items[i] = uint32(i)
	}
	before := rssFile(t)
	a.Release()
	if after := rssFile(t); before-after < n*4/2 {
		t.Errorf("file-backed resident memory %d KiB -> %d KiB: the array's %d KiB did not leave", before, after, n*4>>10)
	}
	for i, v := range items {
		if v != uint32(i) {
			t.Fatalf("item %d is %d after Release", i, v)
		}
	}
}

func rssFile(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}
