package graph

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

type buildOptions struct {
	deferStats bool
	storageID  string
	progress   storage.Progress
	scan       []storage.ScanOption
	verify     bool
	workers    int
	log        *slog.Logger
	every      time.Duration
	noCache    bool
	linkCache  bool
	spillAt    int
}

// WithTagLinkCache reads tag links from the index's cache where the listing shows
// the same file (mcache.go): for runs that delete nothing, on object stores. Off by
// default.
func WithTagLinkCache(v bool) BuildOption {
	return func(o *buildOptions) error { o.linkCache = v; return nil }
}

// WithManifestCache turns the manifest cache (mcache.go) on or off: off, every
// manifest is read again, and the cache is neither used nor written. On by default.
func WithManifestCache(v bool) BuildOption {
	return func(o *buildOptions) error { o.noCache = !v; return nil }
}

// WithIDTableMemory sets how many blobs' ids a build holds in memory (16 bytes
// each) before it spills them to sorted files in the index directory (ids.go);
// 0 is an eighth of the Go memory limit (two million blobs under the default
// 256 MiB), or two million without one.
func WithIDTableMemory(blobs int) BuildOption {
	return func(o *buildOptions) error {
		if blobs < 0 {
			return fmt.Errorf("id table memory must be at least 0 blobs, got %d", blobs)
		}
		o.spillAt = blobs
		return nil
	}
}

// BuildOption tunes Build.
type BuildOption func(*buildOptions) error

// WithWorkers bounds concurrent storage calls (listing and manifest reads).
func WithWorkers(n int) BuildOption {
	return func(o *buildOptions) error {
		if n < 1 {
			return fmt.Errorf("workers must be at least 1, got %d", n)
		}
		o.workers = n
		return nil
	}
}

// WithVerifyLinks reads every revision and layer link and warns where its content
// disagrees with its path (see storage.WithVerifyLinks).
func WithVerifyLinks(v bool) BuildOption {
	return func(o *buildOptions) error { o.verify = v; return nil }
}

// WithDeferredStats stats blobs and layer links only where a plan needs their size
// or time (see deferred.go): on the filesystem driver that saves a call per blob and
// per link that tags reach. Their times are then unknown (zero), which capacity
// reports show as such; turn it off for an index meant for reports. On by default.
func WithDeferredStats(v bool) BuildOption {
	return func(o *buildOptions) error { o.deferStats = v; return nil }
}

// WithStorageID records which storage the index describes (see storage.ID).
func WithStorageID(id string) BuildOption {
	return func(o *buildOptions) error { o.storageID = id; return nil }
}

// WithProgress reports listing and manifest reading to p.
func WithProgress(p storage.Progress) BuildOption {
	return func(o *buildOptions) error { o.progress = p; return nil }
}

// WithScanOptions passes options to storage.Scan.
func WithScanOptions(opts ...storage.ScanOption) BuildOption {
	return func(o *buildOptions) error { o.scan = append(o.scan, opts...); return nil }
}

// WithLogger sets where progress lines go (every interval).
func WithLogger(l *slog.Logger, every time.Duration) BuildOption {
	return func(o *buildOptions) error { o.log, o.every = l, every; return nil }
}

// Build scans drv and replaces the contents of idx with the registry's graph: it
// lists the layout, then reads every manifest once, however many repositories link
// it, following index children until none are new.
func Build(ctx context.Context, drv driver.StorageDriver, idx *Index, opts ...BuildOption) error {
	o := buildOptions{deferStats: true, workers: 16, log: slog.New(slog.DiscardHandler), every: 10 * time.Second, progress: storage.NoProgress{}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	// Room for an index the size of the last one, before anything is written.
	prev, _ := idx.Meta()
	if err := idx.CheckSpace(prev.Blobs); err != nil {
		return err
	}
	// Everything but the sweep journal is rebuilt.
	if err := idx.db.DropPrefix(graphPrefixes...); err != nil {
		return fmt.Errorf("clear index: %w", err)
	}
	if err := idx.packs.reset(); err != nil {
		return err
	}
	b := &builder{idx: idx, wb: idx.db.NewWriteBatch(), runs: map[string]*linkRun{}, meta: Meta{Format: indexFormat, Driver: drv.Name(), Storage: o.storageID, Started: time.Now()}}
	if !o.noCache {
		if err := idx.compactManifestCache(); err != nil {
			return err
		}
		var err error
		if b.cache, err = idx.loadManifestCache(); err != nil {
			return err
		}
	}
	scanOpts := append([]storage.ScanOption{storage.WithWorkers(o.workers), storage.WithVerifyLinks(o.verify), storage.WithDeferredStats(o.deferStats), storage.WithEarlyRevisions(b.earlyRevision)}, o.scan...)
	if o.linkCache && !o.noCache {
		b.linkCacheOn = true
		scanOpts = append(scanOpts, storage.WithLinkCache(linkCache{idx}))
	}
	defer func() { b.wb.Cancel() }() // the batch of the moment: flush replaces it
	removeSpills(idx.dir)
	b.ids.dir, b.ids.spillAt = idx.dir, cmp.Or(o.spillAt, spillFor(debug.SetMemoryLimit(-1)))
	defer b.ids.close()
	b.idBuf = appendIDRecord(b.idBuf, "", nil) // id 0 means none: a placeholder keeps chunks aligned

	tick := time.NewTicker(o.every)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Manifests are read while the listing goes on: a pool pulls ids the builder
	// queues as revision links, tags and index children turn up.
	pool := newReadPool(ctx, storage.ReadDriver(drv), idx, o.workers)
	defer pool.close()
	b.pool = pool
	entries := 0
	o.progress.Phase("listing storage", 0)
	err := storage.Scan(ctx, drv, func(e storage.Entry) error {
		entries++
		o.progress.Add(1)
		if entries%4096 == 0 {
			if err := idx.CheckSpace(0); err != nil {
				return err
			}
		}
		// Fold in parsed manifests as they come, so that their references are not
		// all held at once on a large registry.
		if entries%256 == 0 && b.ids.sealed && pool.ready(b.batch()) {
			if err := b.addManifests(pool.take()); err != nil {
				return err
			}
		}
		select {
		case <-tick.C:
			o.log.Info("scanning storage", "entries", entries, "blobs", b.meta.Blobs, "manifests read", pool.doneCount())
		default:
		}
		return b.add(e)
	}, scanOpts...)
	if err != nil {
		return err
	}
	if err := b.flushLinks(); err != nil {
		return err
	}
	o.log.Info("listed storage", "entries", entries, "blobs", b.meta.Blobs)
	o.progress.Phase("reading manifests", int64(b.queuedN))
	o.progress.Add(int64(pool.doneCount()))
	for {
		results, more := pool.wait(b.batch())
		o.progress.Add(int64(len(results)))
		if err := b.addManifests(results); err != nil {
			return err
		}
		if !more && !pool.pending() || ctx.Err() != nil {
			break
		}
		select {
		case <-tick.C:
			o.log.Info("reading manifests", "done", pool.doneCount())
		default:
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Named manifests without blob data are recorded as missing; index children among
	// them may have been named after the listing, so this comes last.
	for _, m := range b.missing {
		if err := b.addManifest(parseResult{id: m.id, d: m.d, missing: true}); err != nil {
			return err
		}
	}
	if err := b.resolveDeferred(ctx, drv, o.workers, o.progress); err != nil {
		return err
	}
	if err := b.finish(); err != nil {
		return err
	}
	if err := b.finishCache(); err != nil {
		return err
	}
	if err := b.dropStaleLinks(); err != nil {
		return err
	}
	if err := idx.packs.sync(); err != nil {
		return err
	}
	if err := idx.mcache.sync(); err != nil {
		return err
	}
	b.meta.Finished = time.Now()
	b.meta.MaxID = b.next
	if err := b.putJSON([]byte{pMeta}, b.meta); err != nil {
		return err
	}
	if err := b.wb.Flush(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	idx.forgetDigests()
	o.log.Info("index built", "blobs", b.meta.Blobs, "manifests", b.meta.Manifests, "manifests read", b.meta.ManifestsRead,
		"from the cache", b.meta.ManifestsCached, "read early", b.meta.ManifestsEarly, "took", b.meta.Finished.Sub(b.meta.Started).Round(time.Millisecond))
	return nil
}

var graphPrefixes = [][]byte{{pID}, {pRepo}, {pRevision}, {pTag}, {pTagIndex}, {pLayer}, {pUpload}, {pManifest}, {pEdge}, {pSubject}, {pWarning}, {pMeta}}

type builder struct {
	idx     *Index
	wb      *badger.WriteBatch
	ids     idTable
	queuedN int // manifests to read
	next    uint32
	present Bitset
	def     deferred
	queued  Bitset
	pool    *readPool
	missing []readJob // manifests named but without blob data
	warnSeq uint64
	meta    Meta

	idBuf    []byte // records of the id chunk being filled
	idChunkN uint32 // its number
	runs     map[string]*linkRun
	pinned   map[string]Repo // repositories a warning pinned: a later entry keeps the pin

	cache       *manifestCache       // nil: off
	cacheValid  Bitset               // listed with the validator of their cached parse
	cacheStat   Bitset               // listed without a time: a stat says whether the cache holds
	fresh       []uint32             // parsed from a read; their validator is in the listing
	earlyFiles  map[uint32]earlyFile // of the fresh read before the listing (early.go)
	linkCacheOn bool                 // the tag link cache is read and written
	tagLinks    int                  // tag links listed

	links    []heldLink // layer links waiting for a batch lookup of their ids
	linkRepo string     // the repository of the last held link, held once
	keys     []uint64   // a batch's keys, kept for the next
}

// heldLink is a layer link held for flushLinks: its digest as bytes, not its path.
type heldLink struct {
	repo     string
	sum      [32]byte
	key      uint64
	mt       time.Time
	deferred bool
}

// prefetchBatch is how many references and how many layer links a build gathers
// before looking their ids up at once, when the id table is spilled (ids.go): about
// 30 MB of parsed manifests (twice that while the next batch is read), and the keys
// of a batch are then 1 in 400 of a 100M table's. Larger batches read less of the
// table a key but hold more.
const prefetchBatch = 1 << 18

// batch returns how many references a batch gathers: 1 (every result as it comes)
// while the id table is in memory, and no more than the table held before it spilled
// (a few, when tests spill it early).
func (b *builder) batch() int {
	if b.ids.file == nil {
		return 1
	}
	return max(1, min(prefetchBatch, b.ids.spillAt))
}

// addManifests adds parsed manifests, their references' ids first looked up
// together.
func (b *builder) addManifests(rs []parseResult) error {
	if b.ids.file != nil && len(rs) > 0 {
		keys := b.keys[:0]
		add := func(d digest.Digest) {
			if k, ok := prefix64(d); ok {
				keys = append(keys, k)
			}
		}
		for _, r := range rs {
			for _, ref := range r.parsed.Refs {
				add(ref.Digest)
			}
			for _, d := range r.mentions {
				add(d)
			}
		}
		if err := b.prefetch(keys); err != nil {
			return err
		}
	}
	for _, r := range rs {
		if err := b.addManifest(r); err != nil {
			return err
		}
	}
	return nil
}

// prefetch sorts keys and looks them up together; keys is kept for the next batch.
func (b *builder) prefetch(keys []uint64) error {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b.keys = keys
	return b.ids.prefetch(keys)
}

// holdLink holds a plain layer link (no warning, naming its own blob) for
// flushLinks once the id table is spilled, and says whether it did.
func (b *builder) holdLink(e storage.Entry) (bool, error) {
	if b.ids.file == nil || e.Target != e.Digest || e.Warning != "" || e.Digest.Algorithm() != digest.SHA256 {
		return false, nil
	}
	var sum [32]byte
	if enc := e.Digest.Encoded(); len(enc) != 2*len(sum) {
		return false, nil
	} else if _, err := hex.Decode(sum[:], []byte(enc)); err != nil {
		return false, nil
	}
	if e.Repo != b.linkRepo {
		b.linkRepo = strings.Clone(e.Repo) // not a slice of the entry's path, which would stay
	}
	b.links = append(b.links, heldLink{repo: b.linkRepo, sum: sum, key: binary.BigEndian.Uint64(sum[:8]), mt: e.ModTime, deferred: e.Deferred})
	if len(b.links) >= b.batch() {
		return true, b.flushLinks()
	}
	return true, nil
}

// flushLinks adds the held layer links, their ids looked up together.
func (b *builder) flushLinks() error {
	if len(b.links) == 0 {
		return nil
	}
	keys := b.keys[:0]
	for _, l := range b.links {
		keys = append(keys, l.key)
	}
	if err := b.prefetch(keys); err != nil {
		return err
	}
	for _, l := range b.links {
		// A blob listed under this key is the link's (a colliding key reads 0);
		// anything else takes the long way, by digest.
		id, _ := b.ids.nearID(l.key)
		if id == 0 {
			var err error
			if id, err = b.id(digest.NewDigestFromBytes(digest.SHA256, l.sum[:])); err != nil {
				return err
			}
		}
		if l.deferred {
			b.def.layers = append(b.def.layers, b.def.link(l.repo, id))
			continue
		}
		if err := b.putLayer(l.repo, id, id, l.mt, ""); err != nil {
			return err
		}
	}
	b.links = b.links[:0]
	return nil
}

// linkRun collects one repository's layer links into one index key.
type linkRun struct {
	seq uint32
	n   int
	buf []byte
}

const linksPerRun = 512

// putID appends the record of id, the next id, to the current chunk, writing the
// chunk out when the next one starts.
func (b *builder) putID(id uint32, d digest.Digest, blob *Blob) error {
	if id/idChunk != b.idChunkN {
		if err := b.flushIDs(); err != nil {
			return err
		}
		b.idChunkN, b.idBuf = id/idChunk, b.idBuf[:0]
	}
	b.idBuf = appendIDRecord(b.idBuf, d, blob)
	return nil
}

// flushIDs writes the current chunk as far as it goes; it is rewritten when it grows.
func (b *builder) flushIDs() error {
	if len(b.idBuf) == 0 {
		return nil
	}
	return b.setPacked(idKey(pID, b.idChunkN), b.idBuf)
}

func (b *builder) putLayer(repo string, id, target uint32, mt time.Time, bad string) error {
	r := b.runs[repo]
	if r == nil {
		r = &linkRun{}
		b.runs[repo] = r
	}
	r.buf = appendLinkRecord(r.buf, id, target, mt, bad)
	if r.n++; r.n >= linksPerRun {
		return b.flushRun(repo, r)
	}
	return nil
}

func (b *builder) flushRun(repo string, r *linkRun) error {
	if r.n == 0 {
		return nil
	}
	err := b.setPacked(nameIDKey(pLayer, r.seq, repo), r.buf)
	r.seq, r.n, r.buf = r.seq+1, 0, nil
	return err
}

// finish writes what is still buffered.
func (b *builder) finish() error {
	for repo, r := range b.runs {
		if err := b.flushRun(repo, r); err != nil {
			return err
		}
	}
	return b.flushIDs()
}

// newID assigns the next id to d, which is not a blob present in the store.
func (b *builder) newID(d digest.Digest) (uint32, error) {
	b.next++
	return b.next, b.putID(b.next, d, nil)
}

// id returns the dense id of d, assigning the next one on first sight. Blob digests
// got theirs while the blob store was listed.
func (b *builder) id(d digest.Digest) (uint32, error) {
	if !b.ids.sealed {
		if err := b.seal(); err != nil {
			return 0, err
		}
	}
	if id, err := b.ids.lookup(d); id != 0 || err != nil {
		return id, err
	}
	id, err := b.newID(d)
	if err != nil {
		return 0, err
	}
	b.ids.addExact(d, id)
	return id, nil
}

// seal ends the blob phase: the id table is sorted, after the batch is flushed so
// that colliding prefixes can be resolved from the index. The blob count is known
// now: the index's disk must have room for all of them.
func (b *builder) seal() error {
	// A spilled id table is written once more, merged, while its runs still exist.
	if err := b.idx.CheckSpace(b.meta.Blobs + b.meta.Blobs*idRecord/BytesPerBlob); err != nil {
		return err
	}
	if err := b.flush(); err != nil {
		return err
	}
	err := b.ids.seal(b.idx.Digest)
	b.idx.forgetDigests() // the chunk read may grow
	return err
}

// flush makes everything put so far readable from the index.
func (b *builder) flush() error {
	if err := b.flushIDs(); err != nil {
		return err
	}
	if err := b.wb.Flush(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	b.wb = b.idx.db.NewWriteBatch()
	b.idx.forgetDigests()
	return nil
}

func (b *builder) enqueue(id uint32, d digest.Digest) {
	if !b.queued.Has(id) {
		b.queued.Set(id)
		b.queuedN++
		if !b.present.Has(id) {
			b.missing = append(b.missing, readJob{id: id, d: d})
			return
		}
		j := readJob{id: id, d: d, deferred: b.def.blobs.Has(id)}
		switch {
		case b.cacheValid.Has(id):
			j.mode, j.v = readCached, b.cache.find(d).v
		case b.cacheStat.Has(id):
			j.mode, j.v = readStatCached, b.cache.find(d).v
		}
		b.pool.add(j)
	}
}

// setPacked writes a bulk value to the pack file and its pointer to the index.
func (b *builder) setPacked(k, v []byte) error {
	ref, err := b.idx.packs.put(v)
	if err != nil {
		return err
	}
	return b.wb.Set(k, ref)
}

func (b *builder) putJSON(k []byte, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.wb.Set(k, j)
}

// EntryWarning returns the warning the index records for a scan entry, if any (a
// repository without _manifests aside: OrphanWarning, once all its entries are in).
// Every engine that reads a scan words its warnings with it.
func EntryWarning(e storage.Entry) (Warning, bool) {
	switch e.Kind {
	case storage.KindWarning:
		w := Warning{Kind: cmp.Or(e.WarnKind, "unexpected_path"), Repository: e.Repo, Path: e.Path, Detail: e.Warning, Keep: e.Keep, Blocks: e.Blocks}
		if e.Keep {
			w.Digest = e.Digest.String()
		}
		return w, true
	case storage.LayerLink, storage.RevisionLink:
		if e.Warning != "" {
			return Warning{Kind: cmp.Or(e.WarnKind, "corrupt_link"), Repository: e.Repo, Digest: e.Digest.String(), Path: e.Path, Detail: e.Warning + "; kept"}, true
		}
	case storage.TagCurrentLink:
		if e.Warning != "" {
			return Warning{Kind: cmp.Or(e.WarnKind, "corrupt_link"), Repository: e.Repo, Path: e.Path, Detail: e.Warning + "; every manifest of the repository is kept"}, true
		}
	case storage.UploadDir:
		if e.Warning != "" {
			return Warning{Kind: "upload", Repository: e.Repo, Path: e.Path, Detail: e.Warning}, true
		}
	case storage.KindRepo:
		if e.Warning != "" {
			return Warning{Kind: cmp.Or(e.WarnKind, "invalid_repository"), Repository: e.Repo, Path: e.Path, Detail: e.Warning, Blocks: e.Blocks}, true
		}
	}
	return Warning{}, false
}

// OrphanWarning is the warning for a repository directory without _manifests.
func OrphanWarning(repo, path string) Warning {
	return Warning{Kind: "orphan_repository", Repository: repo, Path: path, Detail: "directory has _layers or _uploads but no _manifests"}
}

// Schema1Warning is the warning for a legacy schema1 manifest.
func Schema1Warning(d digest.Digest, blobPath string) Warning {
	return Warning{Kind: "schema1_manifest", Digest: d.String(), Path: blobPath, Detail: "legacy schema1 manifest (distribution v3 cannot read it); its fsLayers are kept"}
}

func (b *builder) warn(w Warning) error {
	b.warnSeq++
	k := make([]byte, 9)
	k[0] = pWarning
	binary.BigEndian.PutUint64(k[1:], b.warnSeq)
	return b.putJSON(k, w)
}

func (b *builder) add(e storage.Entry) error {
	if e.Kind == storage.LayerLink {
		if held, err := b.holdLink(e); held || err != nil {
			return err
		}
	}
	var target uint32
	if e.Target != "" {
		var err error
		if target, err = b.id(e.Target); err != nil {
			return err
		}
	}
	switch e.Kind {
	case storage.BlobData:
		if b.ids.sealed {
			return fmt.Errorf("scan listed blob %s after the blob store was done", e.Digest)
		}
		b.next++
		id := b.next
		if err := b.ids.addBlob(e.Digest, id); err != nil {
			return err
		}
		b.present.Set(id)
		b.meta.Blobs++
		if c := b.cache.find(e.Digest); c != nil {
			c.seen = true
			switch {
			case e.Deferred:
				b.cacheStat.Set(id)
			case c.v == (validator{e.Size, unixNanos(e.ModTime)}):
				b.cacheValid.Set(id)
			}
		}
		if e.Deferred {
			b.def.blobs.Set(id)
			return b.putID(id, e.Digest, &Blob{}) // filled in by resolveDeferred
		}
		return b.putID(id, e.Digest, &Blob{Size: e.Size, ModTime: e.ModTime})
	case storage.RevisionLink, storage.LayerLink:
		id, err := b.id(e.Digest)
		if err != nil {
			return err
		}
		prefix := byte(pLayer)
		if e.Kind == storage.RevisionLink {
			prefix = pRevision
			b.enqueue(id, e.Digest)
			if target != 0 {
				b.enqueue(target, e.Target)
			}
		}
		if w, ok := EntryWarning(e); ok {
			if err := b.warn(w); err != nil {
				return err
			}
		}
		if prefix == pLayer && e.Deferred {
			b.def.layers = append(b.def.layers, b.def.link(e.Repo, id))
			return nil
		}
		if prefix == pLayer {
			return b.putLayer(e.Repo, id, target, e.ModTime, e.Warning)
		}
		if b.def.on() {
			b.def.revs = append(b.def.revs, b.def.link(e.Repo, id))
		}
		return b.wb.Set(nameIDKey(prefix, id, e.Repo), linkValue(target, e.ModTime, e.Warning))
	case storage.TagCurrentLink:
		if e.LinkCached {
			b.meta.TagLinksCached++
		}
		b.tagLinks++
		if err := b.cacheLink(e); err != nil {
			return err
		}
		if target != 0 {
			b.enqueue(target, e.Target)
			if b.def.on() {
				b.def.tags = append(b.def.tags, b.def.link(e.Repo, target))
			}
		}
		if w, ok := EntryWarning(e); ok {
			if err := b.warn(w); err != nil {
				return err
			}
		}
		return b.wb.Set(nameKey(pTag, e.Repo, e.Tag), linkValue(target, e.ModTime, e.Warning))
	case storage.TagIndexLink:
		id, err := b.id(e.Digest)
		if err != nil {
			return err
		}
		return b.wb.Set(nameIDKey(pTagIndex, id, e.Repo, e.Tag), nil)
	case storage.UploadDir:
		started := e.StartedAt
		if started.IsZero() {
			started = e.ModTime
		}
		if w, ok := EntryWarning(e); ok {
			if err := b.warn(w); err != nil {
				return err
			}
		}
		return b.putJSON(nameKey(pUpload, e.Repo, e.Upload), Upload{StartedAt: started, Size: e.Size, Bad: e.Warning})
	case storage.KindRepo:
		r := Repo{HasManifests: e.HasManifests, Bad: e.Warning}
		if pin, ok := b.pinned[e.Repo]; ok {
			// Found again after a warning pinned it (a symbolic link inside it).
			r.HasManifests, r.Bad = r.HasManifests || pin.HasManifests, cmp.Or(r.Bad, pin.Bad)
		}
		switch {
		case e.Warning != "":
			if b.pinned == nil {
				b.pinned = map[string]Repo{}
			}
			b.pinned[e.Repo] = r
			w, _ := EntryWarning(e)
			if err := b.warn(w); err != nil {
				return err
			}
		case !r.HasManifests:
			if err := b.warn(OrphanWarning(e.Repo, e.Path)); err != nil {
				return err
			}
		}
		return b.putJSON(nameKey(pRepo, e.Repo), r)
	case storage.KindWarning:
		w, _ := EntryWarning(e)
		return b.warn(w)
	}
	return fmt.Errorf("scan entry of kind %v at %s: not handled", e.Kind, e.Path)
}

type parseResult struct {
	id       uint32
	d        digest.Digest
	size     int64 // bytes read
	cached   bool  // parsed from the cache: nothing read
	valid    *validator
	missing  bool
	parsed   Parsed
	err      error
	mentions []digest.Digest
	partial  bool      // mentions could not be collected from every byte
	early    time.Time // when the read began, if before the blob store was listed
}

var digestRE = regexp.MustCompile(`sha(256:[a-f0-9]{64}|384:[a-f0-9]{96}|512:[a-f0-9]{128})`)

// maxMentionLen is the longest digest digestRE matches: a chunk boundary can cut
// one, so that many bytes minus one are carried into the next chunk.
const maxMentionLen = len("sha512:") + 128

// ManifestRead is what reading one manifest blob gave: its references, or that its
// blob is missing, or why it cannot be parsed and the digests written in it (what it
// might reference; Partial: not every byte could be read, so it might reference
// anything).
type ManifestRead struct {
	Missing    bool
	Parsed     Parsed
	Unreadable string
	Mentions   []digest.Digest
	Partial    bool
}

// ReadManifest reads and parses the manifest blob d as a build does, for engines
// that read manifests elsewhere (a pipeline's workers).
func ReadManifest(ctx context.Context, drv driver.StorageDriver, d digest.Digest) ManifestRead {
	r := readManifest(ctx, drv, 0, d)
	m := ManifestRead{Missing: r.missing, Parsed: r.parsed, Mentions: r.mentions, Partial: r.partial}
	if r.err != nil {
		m.Unreadable = r.err.Error()
	}
	return m
}

func readManifest(ctx context.Context, drv driver.StorageDriver, id uint32, d digest.Digest) parseResult {
	r := parseResult{id: id}
	p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
	if err != nil {
		r.err, r.partial = err, true
		return r
	}
	rc, err := drv.Reader(ctx, p, 0)
	var nf driver.PathNotFoundError
	if errors.As(err, &nf) {
		r.missing = true
		return r
	}
	if err != nil {
		r.err, r.partial = fmt.Errorf("read %s: %w", p, err), true
		return r
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	r.size = -1
	if err == nil && len(b) <= MaxManifestSize {
		r.size = int64(len(b)) // the blob's size, parsed or not
	}
	switch {
	case err != nil:
		r.err, r.partial = fmt.Errorf("read %s: %w", p, err), true
	case len(b) > MaxManifestSize:
		r.err = fmt.Errorf("%s is larger than %d bytes", p, MaxManifestSize)
	default:
		if got := d.Algorithm().FromBytes(b); got != d {
			r.err = fmt.Errorf("%s content has digest %s", p, got)
		} else {
			r.parsed, r.err = ParseManifest(b)
		}
	}
	if r.err == nil {
		return r
	}
	// It might reference any digest written in it, past the read window too.
	seen := map[digest.Digest]bool{}
	collect := func(chunk []byte) {
		for _, m := range digestRE.FindAll(chunk, -1) {
			if md := digest.Digest(m); !seen[md] {
				seen[md] = true
				r.mentions = append(r.mentions, md)
			}
		}
	}
	collect(b)
	if len(b) > MaxManifestSize && !r.partial {
		if err := streamMentions(rc, b[len(b)-(maxMentionLen-1):], 1<<20, collect); err != nil {
			r.err, r.partial = fmt.Errorf("%w; reading the rest for the digests it names: %v", r.err, err), true
		}
	}
	return r
}

// streamMentions reads rc to its end in chunks of chunk bytes and passes each, with
// the tail of the one before, to collect, so that a digest cut by a chunk boundary
// is found whole.
func streamMentions(rc io.Reader, carry []byte, chunk int, collect func([]byte)) error {
	buf := make([]byte, 0, chunk+maxMentionLen)
	buf = append(buf, carry...)
	for {
		n, err := io.ReadFull(rc, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		collect(buf)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
		keep := min(len(buf), maxMentionLen-1)
		buf = append(buf[:0], buf[len(buf)-keep:]...)
	}
}

func (b *builder) addManifest(r parseResult) error {
	d := r.d
	if !r.cached && !r.missing {
		b.meta.ManifestsRead++
		if !r.early.IsZero() {
			b.meta.ManifestsEarly++
		}
	}
	m := Manifest{Digest: d, Missing: r.missing}
	blobPath, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
	if err != nil {
		return fmt.Errorf("manifest %d: %w", r.id, err)
	}
	if !r.missing {
		b.def.noteSize(r.id, r.size, true)
	}
	switch {
	case r.missing:
	case r.err != nil:
		m.Unreadable, m.Partial = r.err.Error(), r.partial
		for _, md := range r.mentions {
			id, err := b.id(md)
			if err != nil {
				return err
			}
			m.Mentions = append(m.Mentions, id)
		}
	default:
		b.meta.Manifests++
		if r.cached {
			b.meta.ManifestsCached++
		} else if b.cache != nil {
			if err := b.idx.putCache(b.wb, d, r.parsed, r.valid); err != nil {
				return err
			}
			if r.valid == nil {
				b.fresh = append(b.fresh, r.id)
				if !r.early.IsZero() {
					if b.earlyFiles == nil {
						b.earlyFiles = map[uint32]earlyFile{}
					}
					b.earlyFiles[r.id] = earlyFile{r.size, r.early.UnixNano()}
				}
			}
		}
		m.MediaType, m.ArtifactType = r.parsed.MediaType, r.parsed.ArtifactType
		if m.MediaType == MediaTypeSchema1 || m.MediaType == MediaTypeSchema1Signed {
			if err := b.warn(Schema1Warning(d, blobPath)); err != nil {
				return err
			}
		}
		edges := make([]byte, 0, 5*len(r.parsed.Refs))
		b.meta.Edges += len(r.parsed.Refs)
		for _, ref := range r.parsed.Refs {
			to, err := b.id(ref.Digest)
			if err != nil {
				return err
			}
			edges = append(edges, byte(ref.Kind))
			edges = binary.BigEndian.AppendUint32(edges, to)
			b.def.noteSize(to, ref.Size, false)
			if ref.Platform != "" {
				m.Platforms = append(m.Platforms, ChildPlatform{ID: to, Platform: ref.Platform})
			}
			switch ref.Kind {
			case EdgeChild:
				b.enqueue(to, ref.Digest)
			case EdgeSubject:
				m.Subject = to
				sk := make([]byte, 9)
				sk[0] = pSubject
				binary.BigEndian.PutUint32(sk[1:], to)
				binary.BigEndian.PutUint32(sk[5:], r.id)
				if err := b.wb.Set(sk, nil); err != nil {
					return err
				}
			}
		}
		if len(edges) > 0 {
			if err := b.setPacked(idKey(pEdge, r.id), edges); err != nil {
				return err
			}
		}
	}
	return b.putJSON(idKey(pManifest, r.id), m)
}

// readPool reads and parses manifests with a fixed number of goroutines, fed by an
// unbounded queue so that the builder never blocks on it.
type readPool struct {
	ctx      context.Context
	drv      driver.StorageDriver
	idx      *Index
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []readJob
	inflight int
	results  []parseResult
	refs     int // references in results
	hold     int // readers wait while results hold this many references (0: never)
	done     int
	closed   bool

	earlies   map[digest.Digest]*earlyRead // early reads not yet taken by a job (early.go)
	earlyRefs int                          // references the early reads' parses hold
}

// resultRefs is what a result adds to a batch of lookups.
func resultRefs(r parseResult) int { return len(r.parsed.Refs) + len(r.mentions) }

type readJob struct {
	id       uint32
	d        digest.Digest
	mode     readMode
	v        validator // of the cached parse, for readStatCached
	deferred bool      // listed without size and time
	early    *earlyRead
}

type readMode int

const (
	readBlob       readMode = iota
	readCached              // the listing matched the cache's validator
	readStatCached          // a stat decides between the cache and a read
)

func newReadPool(ctx context.Context, drv driver.StorageDriver, idx *Index, workers int) *readPool {
	p := &readPool{ctx: ctx, drv: drv, idx: idx}
	p.cond = sync.NewCond(&p.mu)
	for range workers {
		go p.work()
	}
	return p
}

func (p *readPool) work() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for (len(p.queue) == 0 || p.hold > 0 && p.refs >= p.hold) && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			return
		}
		j := p.queue[len(p.queue)-1]
		p.queue = p.queue[:len(p.queue)-1]
		if j.early != nil {
			p.mu.Unlock()
			p.readEarly(j) // for a job to come: no result of its own
			p.mu.Lock()
			p.cond.Broadcast() // a wait for an empty queue
			continue
		}
		p.inflight++
		p.mu.Unlock()
		r := p.do(j)
		p.mu.Lock()
		p.inflight--
		p.done++
		p.results = append(p.results, r)
		p.refs += resultRefs(r)
		p.cond.Broadcast()
	}
}

func (p *readPool) add(j readJob) {
	p.mu.Lock()
	p.queue = append(p.queue, j)
	p.mu.Unlock()
	p.cond.Signal()
}

// do parses one manifest: from the cache when the blob is the file the cached parse
// came from, else by reading it. A read of a blob listed without a time stats it
// first, for the validator the cache keeps with the parse.
func (p *readPool) do(j readJob) parseResult {
	var v *validator
	if j.mode == readStatCached || j.deferred {
		if path, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: j.d}); err == nil {
			if fi, err := p.drv.Stat(p.ctx, path); err == nil && !fi.IsDir() {
				v = &validator{fi.Size(), unixNanos(fi.ModTime())}
			}
		}
	}
	if j.mode == readCached || j.mode == readStatCached && v != nil && *v == j.v {
		if parsed, ok, err := p.idx.cachedParse(j.d); ok && err == nil {
			size := j.v.size
			if v != nil {
				size = v.size
			}
			return parseResult{id: j.id, d: j.d, size: size, cached: true, parsed: parsed}
		}
		if j.mode == readCached {
			v = nil // the listing's validator: written at the end of the build
		}
	}
	if j.mode == readBlob && !j.deferred {
		if e := p.takeEarly(j.d); e != nil {
			r := e.r
			r.id, r.d, r.early = j.id, j.d, e.start
			return r
		}
	}
	r := readManifest(p.ctx, p.drv, j.id, j.d)
	r.d, r.valid = j.d, v
	return r
}

// unixNanos is t in Unix nanoseconds, 0 for the zero time (as the index keeps it).
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// wait blocks until the results hold at least refs references (and one result), or
// nothing is left to read, and returns the results so far and whether reads are
// still queued or running.
func (p *readPool) wait(refs int) ([]parseResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setHold(refs)
	for (len(p.results) == 0 || p.refs < refs) && (len(p.queue) > 0 || p.inflight > 0) && p.ctx.Err() == nil {
		p.cond.Wait()
	}
	return p.takeLocked(), len(p.queue) > 0 || p.inflight > 0
}

// ready says whether the results hold at least refs references: a batch. Readers
// wait from then on, until the batch is taken.
func (p *readPool) ready(refs int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setHold(refs)
	return len(p.results) > 0 && p.refs >= refs
}

// setHold makes readers wait once a batch is ready, so that parsed manifests do not
// pile up while the builder works through the last one: two batches at most (a
// batch of 1 holds nothing back). Held readers never block a wait for a batch: they
// stop when it has what it needs.
func (p *readPool) setHold(refs int) {
	p.hold = 0
	if refs > 1 {
		p.hold = refs
	}
}

// take returns the results so far without waiting.
func (p *readPool) take() []parseResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeLocked()
}

func (p *readPool) takeLocked() []parseResult {
	r := p.results
	p.results, p.refs = nil, 0
	p.cond.Broadcast() // readers held back by hold
	return r
}

func (p *readPool) pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) > 0 || p.inflight > 0 || len(p.results) > 0
}

func (p *readPool) doneCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *readPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}
