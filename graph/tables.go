package graph

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkTables verifies every block checksum of the index's tables before badger
// opens them. badger verifies them too, but a damaged data block makes it panic in
// a goroutine of its own (a nil block in its error path), which no caller can
// recover: here, in ours, the panic becomes ErrDamaged.
func checkTables(dir string) error {
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	for _, p := range ssts {
		if err := checkTable(p); err != nil {
			return fmt.Errorf("open index %s: %w: table %s: %v", dir, ErrDamaged, filepath.Base(p), err)
		}
	}
	return nil
}

func checkTable(p string) (err error) {
	mf, err := z.OpenMmapFile(p, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable (%v)", r)
		}
	}()
	t, err := table.OpenTable(mf, table.Options{ReadOnly: true, ChkMode: options.OnTableRead, Compression: options.None})
	if err != nil {
		return err // OpenTable closed the file
	}
	return t.MmapFile.Close(-1) // not DecrRef: that deletes the file
}
