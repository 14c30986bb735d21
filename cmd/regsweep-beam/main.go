// Command regsweep-beam makes regsweep's plan with an Apache Beam pipeline, for
// registries that outgrow one machine: listing sharded by prefix, manifests read
// by the workers, reachability in a fixed number of joins. It writes the plan file
// `regsweep gc -d --plan-out` writes, which `regsweep apply` accepts.
//
//	regsweep-beam plan CONFIG --out plan.json [-m] [--delete-untagged-referrers]
//	    [--grace D] [--upload-age D] [--runner prism|flink|spark|dataflow] [runner flags]
//	regsweep-beam sweep CONFIG --plan plan.json [runner flags]
//
// See docs/scale-out.md.
//
// Beam's runner flags (--runner, --endpoint, --project, ...) are Go flags of the
// process, so this command's are too; the same binary is the pipeline's worker
// when a runner starts it with --worker.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/regsweep/regsweep/storage"
)

var (
	untagged       = flag.Bool("m", false, "delete manifests no tag reaches (registry garbage-collect -m)")
	dropReferrers  = flag.Bool("delete-untagged-referrers", false, "under -m, delete referrers (signatures, SBOMs) of live manifests that no tag reaches, as distribution's GC does")
	grace          = flag.Duration("grace", time.Hour, "keep anything younger than this (a push may be under way)")
	uploadAge      = flag.Duration("upload-age", 168*time.Hour, "delete unfinished uploads started longer ago than this")
	out            = flag.String("out", "", "write the plan to this file (required)")
	records        = flag.String("records", "", "where the pipeline writes the plan's records, a path every worker can write and this process read (gs://... on Dataflow; default: the plan file's name + .records)")
	workers        = flag.Int("workers", 16, "listings and reads at once in each worker")
	repoShards     = flag.Int("repo-shards", storage.DefaultRepoShards, "split the repositories into at least this many listing shards where the tree allows (namespaces into their children, a listing each); 1: one shard per top-level directory")
	rounds         = flag.Int("rounds", 16, "reachability joins: the longest chain of manifests from a root (tag -> index -> image -> signature ...) the plan follows; a deeper one fails the job")
	readRounds     = flag.Int("read-rounds", 4, "levels of nested indexes read; a deeper one fails the job")
	allowMassDelet = flag.Bool("allow-mass-delete", false, "plan even when the storage looks incomplete (links but no blobs, or many missing manifests)")
	planFile       = flag.String("plan", "", "sweep: the plan file to delete (regsweep-beam plan --out, or regsweep gc -d --plan-out)")
	maxPlanAge     = flag.Duration("max-plan-age", 6*time.Hour, "sweep: refuse a plan made longer ago than this (what was garbage then may be live now)")
	registryURL    = flag.String("registry-url", "", "sweep: the registry serving this storage, asked whether it accepts pushes before anything is deleted (default: http.addr and http.host of the config; none: ask none)")
	registryUser   = flag.String("registry-user", "", "sweep: user for the registry probe (password in REGSWEEP_REGISTRY_PASSWORD), for registries with authentication")
)

// Object stores: hundreds of requests in flight to one endpoint, on connections
// that are kept (workers run this binary too).
func init() { storage.KeepConnections() }

func main() {
	commands := map[string]func(context.Context, string) error{"plan": runPlan, "sweep": runSweep}
	var run func(context.Context, string) error
	if len(os.Args) > 1 {
		run = commands[os.Args[1]]
	}
	if run == nil {
		// A runner starting this binary as its worker, or a mistake.
		flag.Parse()
		beam.Init()
		fmt.Fprintln(os.Stderr, "usage: regsweep-beam plan CONFIG --out plan.json [flags] | regsweep-beam sweep CONFIG --plan plan.json [flags]; -h lists the flags")
		os.Exit(2)
	}
	config, err := parseArgs(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "regsweep-beam:", err)
		os.Exit(2)
	}
	beam.Init()
	if err := run(context.Background(), config); err != nil {
		slog.Error(os.Args[1]+" failed", "error", err)
		os.Exit(1)
	}
}

// parseArgs parses flags before and after the one argument, CONFIG.
func parseArgs(command string, args []string) (string, error) {
	var pos []string
	for {
		if err := flag.CommandLine.Parse(args); err != nil {
			return "", err
		}
		if flag.NArg() == 0 {
			break
		}
		pos, args = append(pos, flag.Arg(0)), flag.Args()[1:]
	}
	switch {
	case len(pos) != 1:
		return "", fmt.Errorf("want one registry config file, got %q", pos)
	case command == "plan" && *out == "":
		return "", errors.New("--out is required: the plan file to write")
	case command == "sweep" && *planFile == "":
		return "", errors.New("--plan is required: the plan file to sweep")
	case *rounds < 1 || *readRounds < 0 || *workers < 1 || *repoShards < 1:
		return "", errors.New("--rounds, --workers and --repo-shards must be at least 1, --read-rounds at least 0")
	}
	return pos[0], nil
}

// options are the pipeline's options from the flags.
func options(config string, now time.Time) (Options, error) {
	text, err := os.ReadFile(config)
	if err != nil {
		return Options{}, fmt.Errorf("read registry config: %w", err)
	}
	return Options{
		Config: string(text), ConfigName: config, Untagged: *untagged, KeepReferrers: !*dropReferrers,
		Cutoff: now.Add(-*grace).UnixNano(), UploadCutoff: now.Add(-*uploadAge).UnixNano(),
		Workers: *workers, Rounds: *rounds, ReadRounds: *readRounds, RepoShards: *repoShards,
	}, nil
}

func runPlan(ctx context.Context, config string) error {
	now := time.Now()
	o, err := options(config, now)
	if err != nil {
		return err
	}
	recs := cmp.Or(*records, *out+".records")
	p, s := beam.NewPipelineWithRoot()
	textio.Write(s, recs, Build(s, o))
	start := time.Now()
	slog.Info("pipeline starting", "config", config, "records", recs)
	if err := beamx.Run(ctx, p); err != nil {
		return fmt.Errorf("run the pipeline: %w", err)
	}
	slog.Info("pipeline done", "took", time.Since(start).Round(time.Millisecond))
	plan, err := assemble(ctx, recs, o, now, *grace, *uploadAge, *allowMassDelet)
	if err != nil {
		return err
	}
	if err := writePlan(*out, plan); err != nil {
		return err
	}
	slog.Info("plan written", "file", *out, "delete_blobs", plan.Summary.DeleteBlobs, "delete_bytes", plan.Summary.DeleteBytes,
		"blocked", len(plan.Blocked), "apply with", "regsweep apply "+config+" "+*out)
	return nil
}
