package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// Open reads a registry config.yml (REGISTRY_* environment overrides included, as the
// registry applies them) and creates its storage driver through distribution's factory,
// exactly as `registry garbage-collect CONFIG` does. Drivers must be registered by the
// caller with blank imports.
func Open(ctx context.Context, configPath string) (driver.StorageDriver, *configuration.Configuration, error) {
	f, err := os.Open(configPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open registry config: %w", err)
	}
	defer f.Close()
	return OpenConfig(ctx, f, configPath)
}

// OpenConfig is Open for a config read from r (named configPath in errors): a
// pipeline's workers get the config's text, not its file.
func OpenConfig(ctx context.Context, r io.Reader, configPath string) (driver.StorageDriver, *configuration.Configuration, error) {
	cfg, err := configuration.Parse(r)
	if err != nil {
		return nil, nil, fmt.Errorf("parse registry config %s: %w", configPath, err)
	}
	if cfg.Storage.Type() == "inmemory" {
		return nil, nil, fmt.Errorf("%s: storage inmemory lives in the registry process's memory, where no other program can read it; point regsweep at a config whose storage is filesystem, s3, gcs or azure", configPath)
	}
	drv, err := factory.Create(ctx, cfg.Storage.Type(), cfg.Storage.Parameters())
	if err != nil {
		return nil, nil, fmt.Errorf("create %q storage driver from %s: %w", cfg.Storage.Type(), configPath, err)
	}
	if cfg.Storage.Type() == "filesystem" {
		drv = NewFS(drv, FilesystemRoot(cfg))
	}
	return drv, cfg, nil
}

// FilesystemRoot returns the root directory of a filesystem storage config, with
// the driver's default.
func FilesystemRoot(cfg *configuration.Configuration) string {
	if v, ok := cfg.Storage.Parameters()["rootdirectory"]; ok && fmt.Sprint(v) != "" {
		return fmt.Sprint(v)
	}
	return "/var/lib/registry"
}

// identityKeys are the driver parameters that say where data lives (not how to
// reach it): two configs that agree on them name the same storage.
var identityKeys = []string{"rootdirectory", "bucket", "region", "regionendpoint", "container", "accountname", "realm"}

// ID names the storage a config points at, e.g. "filesystem rootdirectory=/var/lib/registry",
// the same however it is spelled: a filesystem root is made absolute with every
// symbolic link resolved, and an object store prefix loses its surrounding slashes.
// Plans record it so that a plan is never applied to other storage, and the run
// lock is keyed by it.
func ID(cfg *configuration.Configuration) string {
	params := cfg.Storage.Parameters()
	id := cfg.Storage.Type()
	if id == "filesystem" {
		return id + " rootdirectory=" + realPath(FilesystemRoot(cfg))
	}
	for _, k := range identityKeys {
		v, ok := params[k]
		if !ok || fmt.Sprint(v) == "" {
			continue
		}
		s := fmt.Sprint(v)
		if k == "rootdirectory" {
			if s = strings.Trim(s, "/"); s == "" {
				continue
			}
		}
		id += fmt.Sprintf(" %s=%v", k, s)
	}
	return id
}

// realPath returns dir absolute and with symbolic links resolved, as far as it exists.
func realPath(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Clean(dir)
	}
	// Resolve the longest existing prefix; what does not exist yet cannot be a link.
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if p == filepath.Dir(p) {
			return abs
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}
