package storage

import (
	"context"
	"fmt"
	"os"

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
	cfg, err := configuration.Parse(f)
	if err != nil {
		return nil, nil, fmt.Errorf("parse registry config %s: %w", configPath, err)
	}
	drv, err := factory.Create(ctx, cfg.Storage.Type(), cfg.Storage.Parameters())
	if err != nil {
		return nil, nil, fmt.Errorf("create %q storage driver from %s: %w", cfg.Storage.Type(), configPath, err)
	}
	return drv, cfg, nil
}

// identityKeys are the driver parameters that say where data lives (not how to
// reach it): two configs that agree on them name the same storage.
var identityKeys = []string{"rootdirectory", "bucket", "region", "regionendpoint", "container", "accountname", "realm"}

// ID names the storage a config points at, e.g. "filesystem rootdirectory=/var/lib/registry".
// Plans record it so that a plan is never applied to other storage.
func ID(cfg *configuration.Configuration) string {
	params := cfg.Storage.Parameters()
	id := cfg.Storage.Type()
	for _, k := range identityKeys {
		if v, ok := params[k]; ok && fmt.Sprint(v) != "" {
			id += fmt.Sprintf(" %s=%v", k, v)
		}
	}
	return id
}
