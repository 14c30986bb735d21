package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/regsweep/regsweep/storage"
)

// ErrWritable is wrapped by Check when a registry serving the storage accepts
// pushes, or may (the probe could not tell): a sweep must not start.
var ErrWritable = errors.New("the registry may accept pushes")

// ErrBadURL is wrapped by Check when the URL given is not one.
var ErrBadURL = errors.New("bad registry URL")

// Timeout bounds each probe.
const Timeout = 10 * time.Second

// Check asks the registries serving drv's storage whether they accept writes: the
// one at rawURL, or with rawURL "" those cfg names (http.addr, http.host); "none"
// asks none. A probe's cancelled upload is removed from the storage. It returns
// what each probe found, and ErrWritable, with the operator's way out, when a sweep
// must not go on.
func Check(ctx context.Context, cfg *configuration.Configuration, drv driver.StorageDriver, rawURL string, creds Credentials, log *slog.Logger) ([]Result, error) {
	if rawURL == "none" {
		return []Result{{URL: "none", State: Skipped, Detail: "--registry-url none: the registry was not asked whether it accepts writes"}}, nil
	}
	var targets []Target
	if rawURL != "" {
		t, err := URLTarget(rawURL, Timeout)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
		}
		targets = append(targets, t)
	} else {
		var err error
		if targets, err = Targets(cfg, Timeout); err != nil {
			return nil, err
		}
	}
	if len(targets) == 0 {
		return []Result{{State: Skipped, Detail: "the config names no http.addr or http.host: pass --registry-url to have the registry probed"}}, nil
	}
	repo, err := storage.AnyRepository(ctx, drv)
	if err != nil {
		return nil, err
	}
	if repo == "" {
		repo = "regsweep-probe"
	}
	var out []Result
	bad := -1
	for _, t := range targets {
		r := Probe(ctx, t, repo, creds)
		if r.Upload != "" {
			// What the cancelled upload left in the storage (its hash state).
			if p, err := storage.Path(storage.Spec{Kind: storage.UploadDir, Repo: repo, Upload: r.Upload}); err == nil {
				if err := drv.Delete(ctx, p); err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
					log.Warn("could not remove the probe's cancelled upload", "path", p, "error", err)
				}
			}
		}
		out = append(out, r)
		log.Info("registry probed", "url", r.URL, "state", r.State, "detail", r.Detail)
		if r.State.Blocks() && bad < 0 {
			bad = len(out) - 1
		}
	}
	if bad >= 0 {
		b := out[bad]
		what := "accepts pushes"
		if b.State == Unknown {
			what = "may accept pushes (the probe could not tell)"
		}
		return out, fmt.Errorf("refusing to sweep: %w: the registry at %s %s: %s. A push during a sweep can lose data. Set maintenance.readonly.enabled: true in its config and restart it, or stop it; then run again. (--registry-url none skips this check when the registry is elsewhere and known to be read-only)", ErrWritable, b.URL, what, b.Detail)
	}
	return out, nil
}
