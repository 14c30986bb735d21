package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// Options are what every stage needs: how to reach the storage and the rules of
// the plan. They are serialized into the job graph, the registry config's text
// included: give object store credentials through the environment or the
// workers' identity, not in the file.
type Options struct {
	Config        string `json:"config"`      // the registry config.yml's text
	ConfigName    string `json:"config_name"` // its file name, for errors
	Untagged      bool   `json:"untagged"`    // -m: tags are the roots
	KeepReferrers bool   `json:"keep_referrers"`
	Cutoff        int64  `json:"cutoff"`                // unix nanos: anything younger is kept (grace)
	UploadCutoff  int64  `json:"upload_cutoff"`         // unix nanos: uploads started before go
	Workers       int    `json:"workers"`               // listings and reads at once per worker
	Rounds        int    `json:"rounds"`                // reachability rounds unrolled
	ReadRounds    int    `json:"read_rounds"`           // levels of nested indexes read
	Walk          bool   `json:"walk,omitempty"`        // list with the driver's Walk whatever it is (drivers that only walk)
	RepoShards    int    `json:"repo_shards,omitempty"` // repository shards to aim at (0: storage.DefaultRepoShards)
}

// young reports whether t is within the grace period.
func (o Options) young(t time.Time) bool { return t.After(time.Unix(0, o.Cutoff)) }

// opener opens the storage driver once per DoFn instance (Setup).
type opener struct {
	O   Options `json:"o"`
	drv driver.StorageDriver
}

func (f *opener) open(ctx context.Context) error {
	drv, _, err := storage.OpenConfig(ctx, strings.NewReader(f.O.Config), f.O.ConfigName)
	f.drv = drv
	return err
}

// Records between stages are JSON strings, keyed by a digest or by
// repository+"\x00"+digest: the SDK's schema coder does not carry time.Time, and
// strings keep every join a plain CoGroupByKey.

// manifestRec is what reading a manifest gave, as the walk needs it.
type manifestRec struct {
	Missing    bool     `json:"x,omitempty"`
	Unreadable string   `json:"u,omitempty"`
	Partial    bool     `json:"p,omitempty"`
	Children   []string `json:"c,omitempty"` // index children: expanded
	Blobs      []string `json:"b,omitempty"` // config, layers: live, not expanded
	Subject    string   `json:"s,omitempty"`
	Mentions   []string `json:"mn,omitempty"`
	Schema1    bool     `json:"s1,omitempty"`
}

func (m manifestRec) blocked() bool { return m.Missing || m.Unreadable != "" }

func repoKey(repo string, d digest.Digest) string { return repo + "\x00" + string(d) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own records, which always encode
	}
	return string(b)
}

// rootsFn lists the layout's roots: the shards to scan, and what the roots
// themselves hold that is wrong.
type rootsFn struct{ opener }

func (f *rootsFn) Setup(ctx context.Context) error { return f.open(ctx) }

func (f *rootsFn) ProcessElement(ctx context.Context, _ []byte, shard, entry func(string)) error {
	shards, err := storage.Shards(ctx, f.drv, func(e storage.Entry) error { entry(encodeEntry(e)); return nil },
		storage.WithRepoShards(cmp.Or(f.O.RepoShards, storage.DefaultRepoShards)), storage.WithShardWorkers(cmp.Or(f.O.Workers, 16)))
	if err != nil {
		return fmt.Errorf("list the registry's roots (%s): %w", f.O.ConfigName, err)
	}
	for _, s := range shards {
		shard(mustJSON(s))
	}
	return nil
}

// scanFn scans one shard.
type scanFn struct{ opener }

func (f *scanFn) Setup(ctx context.Context) error { return f.open(ctx) }

func (f *scanFn) ProcessElement(ctx context.Context, shard string, emit func(string)) error {
	var s storage.Shard
	if err := json.Unmarshal([]byte(shard), &s); err != nil {
		return err
	}
	var opts []storage.ScanOption
	if f.O.Walk {
		opts = append(opts, storage.WithWalk(true))
	}
	return storage.ScanShard(ctx, f.drv, s, max(f.O.Workers, 1), func(e storage.Entry) error { emit(encodeEntry(e)); return nil }, opts...)
}

// rec is a scan entry as the stages carry it: what the rules read, in short JSON
// with times in unix nanoseconds. A listing's entries are most of what the
// pipeline shuffles (and what prism holds in memory), and storage.Entry's JSON
// spells out every field: about four times the bytes.
type rec struct {
	Kind         storage.Kind `json:"k"`
	Repo         string       `json:"r,omitempty"`
	Tag          string       `json:"t,omitempty"`
	Upload       string       `json:"u,omitempty"`
	Digest       string       `json:"d,omitempty"`
	Target       string       `json:"g,omitempty"` // "=": the digest
	Size         int64        `json:"s,omitempty"`
	ModTime      int64        `json:"m,omitempty"`
	StartedAt    int64        `json:"a,omitempty"`
	Path         string       `json:"p,omitempty"` // of warnings only
	Warning      string       `json:"w,omitempty"`
	WarnKind     string       `json:"wk,omitempty"`
	Keep         bool         `json:"kp,omitempty"`
	Blocks       bool         `json:"b,omitempty"`
	HasManifests bool         `json:"h,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func encodeEntry(e storage.Entry) string {
	r := rec{Kind: e.Kind, Repo: e.Repo, Tag: e.Tag, Upload: e.Upload, Digest: string(e.Digest), Target: string(e.Target),
		Size: e.Size, ModTime: nanos(e.ModTime), StartedAt: nanos(e.StartedAt), Warning: e.Warning, WarnKind: e.WarnKind,
		Keep: e.Keep, Blocks: e.Blocks, HasManifests: e.HasManifests}
	if r.Target != "" && r.Target == r.Digest {
		r.Target = "="
	}
	if e.Kind == storage.KindWarning || e.Kind == storage.KindRepo || e.Warning != "" {
		r.Path = e.Path
	}
	return mustJSON(r)
}

func entryOf(v string) storage.Entry {
	var r rec
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		panic(fmt.Sprintf("a scan record that does not decode: %v", err))
	}
	if r.Target == "=" {
		r.Target = r.Digest
	}
	return storage.Entry{Kind: r.Kind, Repo: r.Repo, Tag: r.Tag, Upload: r.Upload, Digest: digest.Digest(r.Digest), Target: digest.Digest(r.Target),
		Size: r.Size, ModTime: timeOf(r.ModTime), StartedAt: timeOf(r.StartedAt), Path: r.Path, Warning: r.Warning, WarnKind: r.WarnKind,
		Keep: r.Keep, Blocks: r.Blocks, HasManifests: r.HasManifests}
}

// Kinds of facts pickFn sorts scan entries into.
const (
	pickBlobs    = "blobs"     // digest -> storage.Entry
	pickRevs     = "revisions" // digest -> storage.Entry
	pickLayers   = "layers"    // digest -> storage.Entry
	pickTags     = "tags"      // repository\x00target -> storage.Entry
	pickTagIndex = "tag-index" // repository\x00digest -> tag
	pickUploads  = "uploads"   // repository -> storage.Entry
	pickFacts    = "facts"     // kind -> value: pinned repositories, protected digests, blocking paths
)

// Facts: small sets every worker reads whole (side inputs).
const (
	factPinned  = "pin"     // a repository nothing is deleted in
	factProtect = "protect" // a digest that stays, with every link naming it
	factAll     = "all"     // why nothing in the blob store may be freed
	// factUnreadable: a repository linking an unreadable manifest a root reaches;
	// its layer links keep their blobs.
	factUnreadable = "unreadable"
)

// pickFn keeps the entries of one kind, keyed for their joins. Facts follow the
// index build's rules: a repository with a warning is pinned, a tag link that
// cannot be read pins its repository under -m, a warning that keeps a digest
// protects it, a warning that blocks keeps every blob.
type pickFn struct {
	What     string `json:"what"`
	Untagged bool   `json:"untagged"`
}

func (f *pickFn) ProcessElement(entry string, emit func(string, string)) error {
	e := entryOf(entry)
	switch {
	case f.What == pickBlobs && e.Kind == storage.BlobData,
		f.What == pickRevs && e.Kind == storage.RevisionLink,
		f.What == pickLayers && e.Kind == storage.LayerLink:
		emit(string(e.Digest), entry)
	case f.What == pickTags && e.Kind == storage.TagCurrentLink:
		emit(repoKey(e.Repo, e.Target), entry)
	case f.What == pickTagIndex && e.Kind == storage.TagIndexLink:
		emit(repoKey(e.Repo, e.Digest), e.Tag)
	case f.What == pickUploads && e.Kind == storage.UploadDir:
		emit(e.Repo, entry)
	case f.What == pickFacts:
		switch {
		case e.Kind == storage.KindRepo && e.Warning != "":
			emit(factPinned, e.Repo+"\t\t"+e.Warning)
		case e.Kind == storage.TagCurrentLink && e.Warning != "" && f.Untagged:
			emit(factPinned, e.Repo+"\t"+e.Tag+"\ttag "+e.Tag+" has an unreadable current link")
		}
		if (e.Kind == storage.KindWarning || e.Kind == storage.KindRepo) && e.Blocks {
			emit(factAll, e.Path+": "+cmp.Or(e.WarnKind, "unexpected_path")+" hides what may be referenced")
		}
		if e.Kind == storage.KindWarning && e.Keep && e.Digest != "" {
			emit(factProtect, string(e.Digest)+"\t"+e.Path+": "+cmp.Or(e.WarnKind, "unexpected_path"))
		}
	}
	return nil
}

// readFn reads and parses one manifest with the single-machine engine's reader.
type readFn struct{ opener }

func (f *readFn) Setup(ctx context.Context) error { return f.open(ctx) }

func (f *readFn) ProcessElement(ctx context.Context, d, _ string, emit func(string, string)) error {
	dg := digest.Digest(d)
	if err := storage.ValidDigest(dg); err != nil {
		emit(d, mustJSON(manifestRec{Unreadable: err.Error(), Partial: true}))
		return nil
	}
	r := graph.ReadManifest(ctx, f.drv, dg)
	m := manifestRec{Missing: r.Missing, Unreadable: r.Unreadable, Partial: r.Partial,
		Schema1: r.Parsed.MediaType == graph.MediaTypeSchema1 || r.Parsed.MediaType == graph.MediaTypeSchema1Signed}
	for _, md := range r.Mentions {
		m.Mentions = append(m.Mentions, string(md))
	}
	for _, ref := range r.Parsed.Refs {
		switch ref.Kind {
		case graph.EdgeChild:
			m.Children = append(m.Children, string(ref.Digest))
		case graph.EdgeSubject:
			m.Subject = string(ref.Digest)
		default:
			m.Blobs = append(m.Blobs, string(ref.Digest))
		}
	}
	emit(d, mustJSON(m))
	return nil
}

// facts is a side input read once per DoFn instance. Where several facts give a
// reason for the same thing, the one regsweep gc reports wins.
type facts struct {
	loaded     bool
	pinned     map[string]string // repository -> why nothing in it is deleted
	protect    map[string]string // digest -> the warning that keeps it
	unreadable map[string]bool
	all        string // why nothing in the blob store may be freed ("": nothing)
}

func (x *facts) load(iter func(*string, *string) bool) {
	if x.loaded {
		return
	}
	x.loaded, x.pinned, x.protect, x.unreadable = true, map[string]string{}, map[string]string{}, map[string]bool{}
	byTag := map[string]string{} // repository -> the last bad tag link's name, as gc pins by the last
	var k, v string
	for iter(&k, &v) {
		switch k {
		case factPinned:
			repo, rest, _ := strings.Cut(v, "\t")
			tag, why, _ := strings.Cut(rest, "\t")
			switch last, seen := byTag[repo]; {
			case tag != "" && (!seen || tag > last):
				byTag[repo], x.pinned[repo] = tag, why
			case tag == "" && !seen:
				x.pinned[repo] = why
			}
		case factProtect:
			d, why, _ := strings.Cut(v, "\t")
			if old, ok := x.protect[d]; !ok || why > old {
				x.protect[d] = why
			}
		case factUnreadable:
			x.unreadable[v] = true
		case factAll:
			// A manifest not read to its end is found first; then the first warning.
			if x.all == "" || v == gc.ReasonPartial || (x.all != gc.ReasonPartial && v < x.all) {
				x.all = v
			}
		}
	}
}

func init() {
	for _, fn := range []any{&rootsFn{}, &scanFn{}, &pickFn{}, &readFn{}} {
		beam.RegisterType(reflect.TypeOf(fn).Elem())
	}
}
