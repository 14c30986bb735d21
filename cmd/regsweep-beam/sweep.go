package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/internal/probe"
	"github.com/regsweep/regsweep/storage"
)

// The sweep's phases, in regsweep gc's order: what references data goes before
// the data, so that a job that fails midway leaves no live reference to a deleted
// blob, and a rerun of the same plan finishes it.
var sweepPhases = []string{phaseReferences, phaseBlobs, phaseLayerLinks, phaseUploads}

const (
	phaseReferences = "references" // revision links with their tag history
	phaseBlobs      = "blobs"
	phaseLayerLinks = "layer-links"
	phaseUploads    = "uploads"
)

// BuildSweep adds the deletions of the plan at planPath to s, one stage a phase;
// each phase reads the one before as a side input, so it starts only when that
// one is done. It returns what each delete did ("deleted", "missing", ...).
func BuildSweep(s beam.Scope, o Options, planPath string) beam.PCollection {
	var done []beam.PCollection
	prev := beam.Create(s, "start") // the first phase waits for nothing
	for _, phase := range sweepPhases {
		s := s.Scope(phase)
		items := beam.ParDo(s, &phaseItemsFn{Plan: planPath, Phase: phase}, beam.Impulse(s), beam.SideInput{Input: prev})
		var fn any = &deleteFn{opener: opener{O: o}}
		if phase == phaseBlobs || phase == phaseLayerLinks {
			fn = &batchFn{deleteFn: deleteFn{opener: opener{O: o}}}
		}
		prev = beam.ParDo(s, fn, beam.Reshuffle(s, items))
		done = append(done, prev)
	}
	return beam.Flatten(s, done...)
}

// readPlan reads a plan file through Beam's filesystems (a local path, gs://).
func readPlan(ctx context.Context, path string) (*gc.Plan, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read plan %s: %w", path, err)
	}
	var p gc.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("plan %s is not a regsweep plan: %w", path, err)
	}
	return &p, nil
}

// phaseItemsFn emits the plan's items of one phase, each as a plan of its own
// (the plan's storage and mode, one item), which sweep.Run deletes.
type phaseItemsFn struct {
	Plan  string `json:"plan"`
	Phase string `json:"phase"`
}

func (f *phaseItemsFn) ProcessElement(ctx context.Context, _ []byte, _ func(*string) bool, emit func(string)) error {
	return f.items(ctx, emit)
}

func (f *phaseItemsFn) items(ctx context.Context, emit func(string)) error {
	p, err := readPlan(ctx, f.Plan)
	if err != nil {
		return err
	}
	one := func(set func(*gc.Plan)) {
		q := gc.Plan{Storage: p.Storage, Mode: p.Mode}
		set(&q)
		emit(mustJSON(&q))
	}
	switch f.Phase {
	case phaseReferences:
		for _, m := range p.Manifests {
			one(func(q *gc.Plan) { q.Manifests = []gc.ManifestItem{m} })
		}
	case phaseBlobs:
		for _, b := range p.Blobs {
			one(func(q *gc.Plan) { q.Blobs = []gc.BlobItem{b} })
		}
	case phaseLayerLinks:
		for _, l := range p.LayerLinks {
			one(func(q *gc.Plan) { q.LayerLinks = []gc.LinkItem{l} })
		}
	case phaseUploads:
		for _, u := range p.Uploads {
			one(func(q *gc.Plan) { q.Uploads = []gc.UploadItem{u} })
		}
	}
	return nil
}

// beforeDelete, when set, runs before every delete (tests fail a worker midway).
var beforeDelete func(path string) error

// deleteFn deletes one item with regsweep's sweep: the path grammar's check of
// what may be deleted, a path already gone counted, not failed (a rerun), a
// symbolic link left alone.
type deleteFn struct{ opener }

func (f *deleteFn) Setup(ctx context.Context) error { return f.open(ctx) }

func (f *deleteFn) ProcessElement(ctx context.Context, item string, emit func(string)) error {
	var p gc.Plan
	if err := json.Unmarshal([]byte(item), &p); err != nil {
		return err
	}
	opts := []sweep.Option{sweep.WithWorkers(1)}
	if beforeDelete != nil {
		opts = append(opts, sweep.WithBeforeDelete(beforeDelete))
	}
	r, err := sweep.Run(ctx, f.drv, &p, opts...)
	if err != nil {
		return err
	}
	for what, n := range map[string]int{
		"deleted_manifests": r.DeletedManifests, "deleted_tag_index": r.DeletedTagIndex, "deleted_blobs": r.DeletedBlobs,
		"deleted_layer_links": r.DeletedLayerLinks, "deleted_uploads": r.DeletedUploads, "missing": r.Missing, "left_alone": r.LeftAlone,
	} {
		for range n {
			emit(what)
		}
	}
	return nil
}

// batchFn deletes blob data and layer links up to a thousand to a request where
// the store can (storage.NewBatcher: S3's DeleteObjects, instead of a listing and a
// delete for each), and otherwise as deleteFn, one at a time. A batch goes when
// full and at the end of the bundle. Deleting a blob's data file deletes the blob
// on an object store, where a directory is only the keys under it. A file already
// gone counts as deleted: DeleteObjects does not tell.
type batchFn struct {
	deleteFn
	b     storage.Batcher
	paths []string
	what  []string // the count each path adds
}

func (f *batchFn) Setup(ctx context.Context) error {
	if err := f.open(ctx); err != nil {
		return err
	}
	f.b, _ = storage.NewBatcher(f.drv)
	return nil
}

func (f *batchFn) ProcessElement(ctx context.Context, item string, emit func(string)) error {
	if f.b == nil {
		return f.deleteFn.ProcessElement(ctx, item, emit)
	}
	var p gc.Plan
	if err := json.Unmarshal([]byte(item), &p); err != nil {
		return err
	}
	var path, what string
	switch {
	case len(p.Blobs) == 1 && len(p.LayerLinks) == 0:
		var err error
		if path, err = storage.Path(storage.Spec{Kind: storage.BlobData, Digest: p.Blobs[0].Digest()}); err != nil {
			return fmt.Errorf("blob %s: %w", p.Blobs[0].Digest(), err)
		}
		what = "deleted_blobs"
	case len(p.LayerLinks) == 1 && len(p.Blobs) == 0:
		path, what = p.LayerLinks[0].Path, "deleted_layer_links"
	default:
		return f.deleteFn.ProcessElement(ctx, item, emit)
	}
	if beforeDelete != nil {
		if err := beforeDelete(path); err != nil {
			return err
		}
	}
	f.paths, f.what = append(f.paths, path), append(f.what, what)
	if len(f.paths) == storage.BatchMax {
		return f.flush(ctx, emit)
	}
	return nil
}

func (f *batchFn) FinishBundle(ctx context.Context, emit func(string)) error {
	return f.flush(ctx, emit)
}

func (f *batchFn) flush(ctx context.Context, emit func(string)) error {
	if len(f.paths) == 0 {
		return nil
	}
	if err := f.b.DeleteFiles(ctx, f.paths); err != nil {
		return err
	}
	for _, w := range f.what {
		emit(w)
	}
	f.paths, f.what = f.paths[:0], f.what[:0]
	return nil
}

func init() {
	beam.RegisterType(reflect.TypeOf((*phaseItemsFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*deleteFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*batchFn)(nil)).Elem())
}

func runSweep(ctx context.Context, config string) error {
	o, err := options(config, time.Now())
	if err != nil {
		return err
	}
	p, err := readPlan(ctx, *planFile)
	if err != nil {
		return err
	}
	id, err := storageID(o)
	if err != nil {
		return err
	}
	switch {
	case p.Storage != id:
		return fmt.Errorf("plan %s was made for storage %q, but %s points at %q: refusing", *planFile, p.Storage, config, id)
	case len(p.Blocked) > 0:
		w := p.Blocked[0]
		return fmt.Errorf("refusing to sweep: %w: %d, first %s in %q (%s)", sweep.ErrBlocked, len(p.Blocked), w.Digest, w.Repository, w.Detail)
	case len(p.Tags) > 0 || len(p.EmptyRepositories) > 0:
		return fmt.Errorf("plan %s deletes tags or repositories (retention policies, pruning): sweep it with regsweep apply", *planFile)
	case time.Since(p.Mode.Now) > *maxPlanAge:
		return fmt.Errorf("plan %s was made at %s, more than --max-plan-age %s ago: what was garbage then may be live now; plan again", *planFile, p.Mode.Now.Format(time.RFC3339), *maxPlanAge)
	}
	// A push during a sweep can lose data: the registry must not accept any.
	drv, cfg, err := storage.OpenConfig(ctx, strings.NewReader(o.Config), o.ConfigName)
	if err != nil {
		return err
	}
	creds := probe.Credentials{Username: *registryUser, Password: os.Getenv("REGSWEEP_REGISTRY_PASSWORD")}
	if _, err := probe.Check(ctx, cfg, drv, *registryURL, creds, slog.Default()); err != nil {
		return err
	}
	recs := cmp.Or(*records, *planFile+".swept")
	pl, s := beam.NewPipelineWithRoot()
	textio.Write(s, recs, BuildSweep(s, o, *planFile))
	start := time.Now()
	slog.Info("sweep starting", "plan", *planFile, "items", len(p.Blobs)+len(p.Manifests)+len(p.LayerLinks)+len(p.Uploads))
	if err := beamx.Run(ctx, pl); err != nil {
		return fmt.Errorf("run the sweep (rerun it with the same plan to finish): %w", err)
	}
	counts := map[string]int{}
	if err := readLines(ctx, recs, func(l string) error { counts[l]++; return nil }); err != nil {
		return err
	}
	args := []any{"took", time.Since(start).Round(time.Millisecond)}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		args = append(args, k, counts[k])
	}
	slog.Info("sweep done", args...)
	return nil
}
