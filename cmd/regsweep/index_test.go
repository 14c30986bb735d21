package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regsweep/regsweep/graph"
)

// A damaged index: dry runs that reuse it, report and graph say so and how to
// rebuild it; real runs rebuild it and say so. Never a panic, and never a hint
// that another regsweep is running when none is.
func TestDamagedIndex(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"truncated table": func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no table")
			}
			if err := os.Truncate(ssts[0], 1000); err != nil {
				t.Fatal(err)
			}
		},
		"random bytes in a table": func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			f, err := os.OpenFile(ssts[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for i := int64(0); i < 3000; i += 97 {
				f.WriteAt([]byte{0xa5, 0x5a}, i)
			}
		},
		"zeroed MANIFEST": func(t *testing.T, dir string) {
			fi, err := os.Stat(filepath.Join(dir, "MANIFEST"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), make([]byte, fi.Size()), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"overwritten pack file": func(t *testing.T, dir string) {
			p := filepath.Join(dir, "packs")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, fi.Size())
			for i := range b {
				b[i] = 0xff
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	cfg := sampleConfig(t)
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{
				{"gc", cfg, "-d", "-q", "--max-index-age", "1h"},
				{"report", "-m"},
				{"graph", "team/app/web"},
			} {
				dir := scanned(t, cfg)
				fn(t, dir)
				_, err := run(t, append(args, "--index", dir)...)
				if err == nil || !strings.Contains(err.Error(), "is damaged: rebuild it with `regsweep scan") || strings.Contains(err.Error(), "another regsweep") {
					t.Errorf("%s: err = %v, want the index called damaged with how to rebuild it", args[0], err)
				}
			}
			dir := scanned(t, cfg)
			fn(t, dir)
			if _, err := run(t, "gc", cfg, "-m", "-q", "--index", dir, "--registry-url", "none"); err != nil {
				t.Errorf("a real run does not rebuild a damaged index: %v", err)
			}
			if _, err := run(t, "report", "--index", dir); err != nil {
				t.Errorf("after the rebuild: %v", err)
			}
		})
	}
}

// The hint that another regsweep is using the index comes only when one is.
func TestIndexInUse(t *testing.T) {
	dir := scanned(t, sampleConfig(t))
	idx, err := graph.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	_, err = run(t, "report", "--index", dir)
	if !errors.Is(err, graph.ErrIndexInUse) || !strings.Contains(err.Error(), "another regsweep is using") {
		t.Errorf("err = %v, want the index in use", err)
	}
}

// Wipe removes an index, and nothing from a directory that is not one.
func TestWipeOnlyIndexes(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := graph.Wipe(dir); err == nil {
		t.Error("Wipe of a directory that holds no index succeeded")
	}
	idx, err := graph.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx.Close()
	if err := graph.Wipe(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "notes.txt" {
		t.Errorf("after Wipe: %v", ents)
	}
}
