package benchenv

import (
	"context"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// FastFS is the filesystem driver with PutContent writing without fsync, to make
// large benchmark trees quickly. Everything else is the real driver.
type FastFS struct {
	driver.StorageDriver
	root string
}

// NewFastFS returns a filesystem driver rooted at root.
func NewFastFS(root string) *FastFS {
	return &FastFS{StorageDriver: filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100}), root: root}
}

// PutContent implements driver.StorageDriver.
func (f *FastFS) PutContent(_ context.Context, p string, b []byte) error {
	full := filepath.Join(f.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, b, 0o644)
}
