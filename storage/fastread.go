package storage

import (
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// ReadDriver returns the driver the scanner reads through. For the filesystem and
// inmemory drivers that is the driver under distribution's base wrapper: the
// wrapper checks every path against a regular expression and opens a trace span,
// which costs more CPU than the stat it wraps, and the scanner only builds paths from
// this package's grammar. Concurrency stays bounded by the driver's own regulator.
// Deletes always go through the full driver. FS reads the OS directly already.
func ReadDriver(d driver.StorageDriver) driver.StorageDriver {
	switch d := d.(type) {
	case *FS:
		return d
	case *filesystem.Driver:
		return d.Base.StorageDriver
	case *inmemory.Driver:
		return d.Base.StorageDriver
	}
	return d
}
