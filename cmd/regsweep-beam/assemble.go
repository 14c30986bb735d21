package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/storage"
)

// assemble reads the pipeline's records into a plan: the items, what is kept and
// why, the blocked warnings, the summary and the lines per repository, and the
// counts the completeness check needs.
func assemble(ctx context.Context, path string, o Options, now time.Time, grace, uploadAge time.Duration, allowMassDelete bool) (*gc.Plan, error) {
	cfg, err := storageID(o)
	if err != nil {
		return nil, err
	}
	p := &gc.Plan{Storage: cfg, Mode: gc.Mode{
		DeleteUntagged: o.Untagged, KeepReferrers: o.KeepReferrers,
		GraceSeconds: int64(grace / time.Second), UploadAgeSeconds: int64(uploadAge / time.Second), Now: now,
	}}
	counts := map[string]int64{}
	repos := map[string]*gc.RepoStats{}
	err = readLines(ctx, path, func(l string) error {
		kind, v, _ := strings.Cut(l, "\t")
		var err error
		switch kind {
		case recBlob:
			var b blobRecord
			if err = json.Unmarshal([]byte(v), &b); err == nil {
				p.Blobs = append(p.Blobs, gc.NewBlobItem(b.Digest, b.Size))
			}
		case recManifest:
			p.Manifests, err = appendJSON(p.Manifests, v)
		case recLink:
			p.LayerLinks, err = appendJSON(p.LayerLinks, v)
		case recUpload:
			p.Uploads, err = appendJSON(p.Uploads, v)
		case recBlocked:
			p.Blocked, err = appendJSON(p.Blocked, v)
		case recWarning:
			p.Warnings, err = appendJSON(p.Warnings, v)
		case recKept:
			p.Kept, err = appendJSON(p.Kept, v)
		case recRepo:
			repos[v] = &gc.RepoStats{Name: v}
		case recCount:
			name, n, _ := strings.Cut(v, "\t")
			counts[name], err = strconv.ParseInt(n, 10, 64)
		default:
			err = fmt.Errorf("unknown record kind %q", kind)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !allowMassDelete {
		if err := gc.CheckComplete(int(counts["root"]), int(counts["broken"]), int(counts["blobs"])); err != nil {
			return nil, err
		}
	}
	summarize(p, counts, repos)
	p.Seal()
	return p, nil
}

// summarize fills the plan's summary and its lines per repository from the sums;
// Seal adds the delete counts.
func summarize(p *gc.Plan, sums map[string]int64, repos map[string]*gc.RepoStats) {
	s := &p.Summary
	s.Repositories = len(repos)
	s.Tags, s.Manifests, s.UnreadableManifests = int(sums["tags"]), int(sums["manifests"]), int(sums["unreadable_manifests"])
	s.Blobs, s.BlobBytes = int(sums["blobs"]), sums["blob_bytes"]
	s.LiveBlobs, s.LiveBytes = int(sums["live_blobs"]), sums["live_bytes"]
	s.KeptByGrace, s.KeptReferrers = int(sums["kept_by_grace"]), int(sums["referrers_kept"])
	for name, n := range sums {
		rest, isRepo := strings.CutPrefix(name, repoSumPrefix)
		field, repo, _ := strings.Cut(rest, "\x00")
		r := repos[repo]
		if !isRepo || r == nil {
			continue // a repository without _manifests has no line, as in gc's report
		}
		switch field {
		case "tags":
			r.Tags = int(n)
		case "manifests":
			r.Manifests = int(n)
		case "bytes":
			r.Bytes = n
		case "unique_bytes":
			r.UniqueBytes = n
		case "reclaimable_bytes":
			r.ReclaimableBytes = n
		}
	}
	p.Repositories = make([]gc.RepoStats, 0, len(repos))
	for _, r := range repos {
		r.SharedBytes = r.Bytes - r.UniqueBytes
		p.Repositories = append(p.Repositories, *r)
	}
	slices.SortFunc(p.Repositories, func(a, b gc.RepoStats) int { return strings.Compare(a.Name, b.Name) })
}

// readLines calls fn for each line of the file at path, through Beam's filesystems
// (a local path, gs://).
func readLines(ctx context.Context, path string, fn func(string) error) error {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return fmt.Errorf("records %s: %w", path, err)
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return fmt.Errorf("read the pipeline's records: %w", err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if err := fn(sc.Text()); err != nil {
			return fmt.Errorf("%s line %d: %w", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func appendJSON[T any](list []T, v string) ([]T, error) {
	var x T
	if err := json.Unmarshal([]byte(v), &x); err != nil {
		return list, err
	}
	return append(list, x), nil
}

// storageID names the storage as regsweep does, so that apply accepts the plan
// for this config only.
func storageID(o Options) (string, error) {
	_, cfg, err := storage.OpenConfig(context.Background(), strings.NewReader(o.Config), o.ConfigName)
	if err != nil {
		return "", err
	}
	return storage.ID(cfg), nil
}

func writePlan(path string, p *gc.Plan) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}
