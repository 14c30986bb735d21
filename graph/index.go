package graph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/opencontainers/go-digest"
)

// Key schema. Every digest has a dense id (uint32, big endian, from 1) so that mark
// sets are bitsets; repository and tag names are separated by 0x00, which neither
// may contain. The bulk values (I, L, E) live in the pack file beside badger, which
// holds a pointer to each (packs.go).
//
//	I<chunk>                   -> id records, packed (chunks.go): digest, and size and
//	                              modtime when blob data is present
//	P<repo>                    -> repoVal (json)                 repository directory
//	R<repo>\0<id>              -> linkVal (json)                 manifest revision link
//	T<repo>\0<tag>             -> tagVal (json)                  tag current link
//	X<repo>\0<tag>\0<id>       -> ""                             tag index entry
//	L<repo>\0<run>             -> layer links, packed (chunks.go)
//	U<repo>\0<upload id>       -> uploadVal (json)               upload in progress
//	M<id>                      -> Manifest (json)                manifest read and parsed
//	E<from id>                 -> its references, packed (chunks.go)
//	S<subject id><referrer id> -> ""                             reverse subject edge
//	W<seq u64>                 -> Warning (json)
//	Z                          -> Meta (json)
const (
	pID       = 'I'
	pRepo     = 'P'
	pRevision = 'R'
	pTag      = 'T'
	pTagIndex = 'X'
	pLayer    = 'L'
	pUpload   = 'U'
	pManifest = 'M'
	pEdge     = 'E'
	pSubject  = 'S'
	pWarning  = 'W'
	pMeta     = 'Z'
)

// Blob is blob data present in the blob store. ModTime is zero when a build with
// deferred stats did not need it (a blob that tags reach).
type Blob struct {
	ID      uint32
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Repo is a repository directory. HasManifests is false for orphans that hold only
// _layers or _uploads. Bad is set when its name is invalid: everything in it is kept.
type Repo struct {
	Name         string `json:"-"`
	HasManifests bool   `json:"m,omitempty"`
	Bad          string `json:"b,omitempty"`
}

// Link is a revision or layer link. ID is the digest in its path; Target the one in
// its content (0 when unreadable, Bad then says why).
type Link struct {
	Repo    string
	ID      uint32
	Target  uint32
	ModTime time.Time
	Bad     string
}

// Tag is a tag's current link. ID is 0 when its content is not a digest.
type Tag struct {
	Repo    string
	Name    string
	ID      uint32
	ModTime time.Time
	Bad     string
}

// TagIndexEntry is one entry of a tag's history.
type TagIndexEntry struct {
	Repo, Tag string
	ID        uint32
}

// Upload is an upload directory. StartedAt falls back to the newest file time.
type Upload struct {
	Repo      string    `json:"-"`
	ID        string    `json:"-"`
	StartedAt time.Time `json:"s"`
	Size      int64     `json:"z,omitempty"` // of its files: data and hash states
	Bad       string    `json:"b,omitempty"`
}

// Manifest is what reading a manifest blob gave. Unreadable is set, with the reason,
// when it could not be read or parsed; Missing when its blob data is absent.
type Manifest struct {
	ID           uint32        `json:"-"`
	Digest       digest.Digest `json:"d"`
	MediaType    string        `json:"mt,omitempty"`
	ArtifactType string        `json:"at,omitempty"`
	Subject      uint32        `json:"s,omitempty"`
	Missing      bool          `json:"x,omitempty"`
	Unreadable   string        `json:"u,omitempty"`
	// Mentions holds the ids of every digest string found in an unreadable
	// manifest's bytes: what it might reference.
	Mentions []uint32 `json:"mn,omitempty"`
	// Partial is set when not every byte of an unreadable manifest could be read:
	// Mentions is incomplete, and it might reference any blob.
	Partial bool `json:"p,omitempty"`
	// Platforms of an index's children, where the index names them. Not held in
	// a loaded Graph: read with Index.ManifestRecord.
	Platforms []ChildPlatform `json:"pl,omitempty"`
}

// ChildPlatform is the platform an index gives one of its children.
type ChildPlatform struct {
	ID       uint32 `json:"i"`
	Platform string `json:"p"`
}

// Edge is one reference out of a manifest.
type Edge struct {
	Kind EdgeKind
	To   uint32
}

// Warning is a problem found while scanning or parsing, naming where.
type Warning struct {
	Kind       string `json:"kind"`
	Repository string `json:"repository,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Path       string `json:"path,omitempty"`
	Detail     string `json:"detail"`
	// Keep: the blob named by Digest, and the links naming it, must stay.
	Keep bool `json:"keep,omitempty"`
	// Blocks: what is at Path is unknown and may reference any blob; a sweep
	// refuses, and with the refusal overridden still frees no blob.
	Blocks bool `json:"blocks,omitempty"`
}

// Meta describes the scan that filled the index.
type Meta struct {
	Format    int       `json:"format"` // indexFormat of the writer
	Driver    string    `json:"driver"`
	Storage   string    `json:"storage,omitempty"` // where the data lives (storage.ID), when the caller said
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	MaxID     uint32    `json:"max_id"`
	Blobs     int       `json:"blobs"`
	Manifests int       `json:"manifests"`
	Edges     int       `json:"edges"` // references out of all manifests
	// ManifestsRead were read from storage; ManifestsCached parsed from the manifest
	// cache (their blobs unchanged since a build read them).
	ManifestsRead   int `json:"manifests_read"`
	ManifestsCached int `json:"manifests_cached"`
	// ManifestsEarly of those read were read before the blob store was listed, on
	// the word of a revision link (early.go).
	ManifestsEarly int `json:"manifests_early"`
	// TagLinksCached were taken from the tag link cache (WithTagLinkCache).
	TagLinksCached int `json:"tag_links_cached"`
}

// indexFormat changes whenever the key schema or a value encoding does: an index
// written in another format is rebuilt, never misread.
const indexFormat = 3

// ErrIndexInUse is wrapped by Open when another process has the index open.
var ErrIndexInUse = errors.New("another process has the index open")

// ErrDamaged is wrapped when the index's files are damaged or contradict each
// other: a file of another size than the index closed with, a block or value that
// fails its checksum, an id without a digest. An index is a cache of the storage:
// rebuild it (Wipe, then a scan).
var ErrDamaged = errors.New("the index is damaged")

// cleanFile records, when the index closes, the size of each of its files. Open
// compares them before badger reads any: badger panics, in goroutines no caller
// can recover, on some damaged tables (a truncated one).
const cleanFile = "regsweep-closed"

// Index is a badger-backed graph index.
type Index struct {
	db    *badger.DB
	packs *packFile
	// mcache holds the manifest cache's parses (mcache.go): unlike packs, it
	// outlives the builds.
	mcache *packFile
	dir    string

	mu          sync.Mutex
	cached      []byte // the value of id chunk cachedChunk
	cachedChunk uint32
}

// Open opens (creating if needed) the index in dir.
func Open(dir string) (*Index, error) {
	if err := checkClosedSizes(dir); err != nil {
		return nil, err
	}
	if err := checkTables(dir); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithMemTableSize(4 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumMemtables(2).
		WithValueThreshold(1 << 10).
		// The index is a scratch file of keys and small values: compression buys
		// little on disk and its table-building buffers cost tens of MiB of memory.
		WithCompression(options.None).
		// A damaged block is an error, not a wrong answer.
		WithChecksumVerificationMode(options.OnBlockRead) // whole tables: checkTables
	db, err := badger.Open(opts)
	if err != nil {
		// badger formats its lock error without wrapping it.
		if strings.Contains(err.Error(), "acquire directory lock") {
			return nil, fmt.Errorf("open index %s: %w", dir, ErrIndexInUse)
		}
		return nil, fmt.Errorf("open index %s: %w: %v", dir, ErrDamaged, err)
	}
	packs, err := openPacks(dir)
	if err != nil {
		db.Close()
		return nil, err
	}
	mcache, err := openPackFile(dir, "mcache")
	if err != nil {
		db.Close()
		packs.close()
		return nil, err
	}
	// Open now: a crash from here on leaves no record, and the next Open trusts
	// badger's own recovery.
	if err := os.Remove(filepath.Join(dir, cleanFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.Close()
		packs.close()
		mcache.close()
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	return &Index{db: db, packs: packs, mcache: mcache, dir: dir}, nil
}

// checkClosedSizes compares the index's files with the sizes recorded when it was
// last closed.
func checkClosedSizes(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, cleanFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // new, or not closed cleanly: badger recovers its own writes
	}
	if err != nil {
		return fmt.Errorf("open index %s: %w", dir, err)
	}
	var want map[string]int64
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("open index %s: %w: %s is not readable", dir, ErrDamaged, cleanFile)
	}
	for name, size := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			return fmt.Errorf("open index %s: %w: %s: %v", dir, ErrDamaged, name, err)
		case fi.Size() != size:
			return fmt.Errorf("open index %s: %w: %s has %d bytes, the index closed with %d", dir, ErrDamaged, name, fi.Size(), size)
		}
	}
	return nil
}

// recordClosedSizes writes cleanFile after a clean close.
func recordClosedSizes(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, e := range ents {
		if e.Name() == cleanFile || e.Name() == "LOCK" || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		sizes[e.Name()] = fi.Size()
	}
	b, err := json.Marshal(sizes)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, cleanFile), b, 0o600)
}

// Wipe removes the index in dir, to be rebuilt: only the files an index has, and
// only when dir holds an index.
func Wipe(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	ours := func(name string) bool {
		switch name {
		case "MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK", "packs", "mcache", cleanFile:
			return true
		}
		ext := filepath.Ext(name)
		return ext == ".sst" || ext == ".vlog" || ext == ".mem"
	}
	isIndex := false
	for _, e := range ents {
		isIndex = isIndex || e.Name() == "MANIFEST" || e.Name() == "packs"
	}
	if !isIndex {
		return fmt.Errorf("%s does not hold a regsweep index: not removing anything", dir)
	}
	for _, e := range ents {
		if ours(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the index and records the sizes of its files for the next Open.
func (x *Index) Close() error {
	err := x.packs.close()
	if cerr := x.mcache.close(); err == nil {
		err = cerr
	}
	if cerr := x.db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = recordClosedSizes(x.dir)
	}
	return err
}

func idKey(prefix byte, id uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], id)
	return k
}

func nameKey(prefix byte, parts ...string) []byte {
	var b bytes.Buffer
	b.WriteByte(prefix)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

func nameIDKey(prefix byte, id uint32, parts ...string) []byte {
	k := nameKey(prefix, parts...)
	k = append(k, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(k[len(k)-4:], id)
	return k
}

// splitNameID undoes nameIDKey: names, then the trailing id.
func splitNameID(k []byte) ([]string, uint32) {
	id := binary.BigEndian.Uint32(k[len(k)-4:])
	names := bytes.Split(k[1:len(k)-5], []byte{0})
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out, id
}

func (x *Index) get(key []byte, into func([]byte) error) (bool, error) {
	err := x.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		return it.Value(into)
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (x *Index) scan(prefix []byte, keysOnly bool, fn func(k, v []byte) error) error {
	return x.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = prefix
		o.PrefetchValues = !keysOnly
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var v []byte
			if !keysOnly {
				var err error
				if v, err = item.ValueCopy(nil); err != nil {
					return err
				}
			}
			if err := fn(item.Key(), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanPacked is scan for keys whose values are in the pack file. v is reused.
func (x *Index) scanPacked(prefix []byte, fn func(k, v []byte) error) error {
	var buf []byte
	return x.scan(prefix, false, func(k, ref []byte) error {
		v, err := x.packs.get(ref, buf)
		if err != nil {
			return fmt.Errorf("index key %q: %w", k, err)
		}
		buf = v
		return fn(k, v)
	})
}

// Meta returns what the scan recorded about itself.
func (x *Index) Meta() (Meta, error) {
	var m Meta
	ok, err := x.get([]byte{pMeta}, func(v []byte) error { return json.Unmarshal(v, &m) })
	if err == nil && !ok {
		err = errors.New("index is empty: run a scan first")
	}
	if err == nil && m.Format != indexFormat {
		err = fmt.Errorf("index was written in format %d by another regsweep version, this one reads format %d: run a scan first", m.Format, indexFormat)
	}
	return m, err
}

// Link and tag values: target id u32, modtime i64 (0: unknown), then the problem text.
func linkValue(target uint32, mt time.Time, bad string) []byte {
	v := make([]byte, 12, 12+len(bad))
	binary.BigEndian.PutUint32(v, target)
	if !mt.IsZero() {
		binary.BigEndian.PutUint64(v[4:], uint64(mt.UnixNano()))
	}
	return append(v, bad...)
}

func decodeLinkValue(v []byte) (uint32, time.Time, string) {
	var mt time.Time
	if n := int64(binary.BigEndian.Uint64(v[4:])); n != 0 {
		mt = time.Unix(0, n)
	}
	return binary.BigEndian.Uint32(v), mt, string(v[12:])
}

func (x *Index) forgetDigests() {
	x.mu.Lock()
	x.cached = nil
	x.mu.Unlock()
}

// getPacked reads the value of key from the pack file.
func (x *Index) getPacked(key []byte) ([]byte, bool, error) {
	var v []byte
	ok, err := x.get(key, func(ref []byte) (err error) { v, err = x.packs.get(ref, nil); return err })
	return v, ok, err
}

// Digest returns the digest of an id. The last chunk read is kept raw: lookups come in runs,
// and only the digest asked for is decoded.
func (x *Index) Digest(id uint32) (digest.Digest, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cached == nil || x.cachedChunk != id/idChunk {
		v, ok, err := x.getPacked(chunkKey(id))
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("index has no digest for id %d", id)
		}
		x.cached, x.cachedChunk = v, id/idChunk
	}
	d, ok := digestAt(x.cached, int(id%idChunk))
	if !ok {
		return "", fmt.Errorf("index has no digest for id %d", id)
	}
	return d, nil
}

// Blobs calls fn for every blob present in the blob store.
func (x *Index) Blobs(fn func(Blob) error) error { return x.blobs(true, fn) }

// BlobSizes is Blobs without digests: cheaper when only sizes and times matter.
func (x *Index) BlobSizes(fn func(Blob) error) error { return x.blobs(false, fn) }

func (x *Index) blobs(withDigest bool, fn func(Blob) error) error {
	return x.scanPacked([]byte{pID}, func(k, v []byte) error {
		first := binary.BigEndian.Uint32(k[1:]) * idChunk
		return walkIDChunk(first, v, withDigest, func(_ uint32, _ digest.Digest, b *Blob) error {
			if b == nil {
				return nil
			}
			return fn(*b)
		})
	})
}

// Repos calls fn for every repository directory.
func (x *Index) Repos(fn func(Repo) error) error {
	return x.scan([]byte{pRepo}, false, func(k, v []byte) error {
		var r Repo
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		r.Name = string(k[1:])
		return fn(r)
	})
}

func (x *Index) links(prefix byte, fn func(Link) error) error {
	return x.scan([]byte{prefix}, false, func(k, v []byte) error {
		target, mt, bad := decodeLinkValue(v)
		names, id := splitNameID(k)
		return fn(Link{Repo: names[0], ID: id, Target: target, ModTime: mt, Bad: bad})
	})
}

// Revisions calls fn for every manifest revision link.
func (x *Index) Revisions(fn func(Link) error) error { return x.links(pRevision, fn) }

// Layers calls fn for every layer link.
func (x *Index) Layers(fn func(Link) error) error {
	return x.scanPacked([]byte{pLayer}, func(k, v []byte) error {
		names, _ := splitNameID(k)
		return decodeLinkRun(names[0], v, fn)
	})
}

// Tags calls fn for every tag current link.
func (x *Index) Tags(fn func(Tag) error) error {
	return x.scan([]byte{pTag}, false, func(k, v []byte) error {
		id, mt, bad := decodeLinkValue(v)
		repo, tag, _ := bytes.Cut(k[1:], []byte{0})
		return fn(Tag{Repo: string(repo), Name: string(tag), ID: id, ModTime: mt, Bad: bad})
	})
}

// TagIndex calls fn for every tag history entry.
func (x *Index) TagIndex(fn func(TagIndexEntry) error) error {
	return x.scan([]byte{pTagIndex}, true, func(k, _ []byte) error {
		names, id := splitNameID(k)
		return fn(TagIndexEntry{Repo: names[0], Tag: names[1], ID: id})
	})
}

// Uploads calls fn for every upload directory.
func (x *Index) Uploads(fn func(Upload) error) error {
	return x.scan([]byte{pUpload}, false, func(k, v []byte) error {
		var u Upload
		if err := json.Unmarshal(v, &u); err != nil {
			return err
		}
		repo, id, _ := bytes.Cut(k[1:], []byte{0})
		u.Repo, u.ID = string(repo), string(id)
		return fn(u)
	})
}

// Manifests calls fn for every manifest that was read (or found missing).
func (x *Index) Manifests(fn func(Manifest) error) error {
	return x.scan([]byte{pManifest}, false, func(k, v []byte) error {
		var m Manifest
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		m.ID = binary.BigEndian.Uint32(k[1:])
		return fn(m)
	})
}

// ManifestRecord returns what the index holds about manifest id; false when id is
// no manifest.
func (x *Index) ManifestRecord(id uint32) (Manifest, bool, error) {
	var m Manifest
	ok, err := x.get(idKey(pManifest, id), func(v []byte) error { return json.Unmarshal(v, &m) })
	m.ID = id
	return m, ok, err
}

// Edges calls fn for every reference out of manifest id.
func (x *Index) Edges(id uint32, fn func(Edge) error) error {
	v, _, err := x.getPacked(idKey(pEdge, id))
	if err != nil {
		return err
	}
	return decodeEdges(v, fn)
}

func decodeEdges(v []byte, fn func(Edge) error) error {
	for ; len(v) >= 5; v = v[5:] {
		if err := fn(Edge{Kind: EdgeKind(v[0]), To: binary.BigEndian.Uint32(v[1:])}); err != nil {
			return err
		}
	}
	return nil
}

// Referrers calls fn for every manifest whose subject is id.
func (x *Index) Referrers(id uint32, fn func(uint32) error) error {
	return x.scan(idKey(pSubject, id), true, func(k, _ []byte) error {
		return fn(binary.BigEndian.Uint32(k[5:]))
	})
}

// AllEdges calls fn for every reference of every manifest, grouped by manifest.
func (x *Index) AllEdges(fn func(uint32, Edge) error) error {
	return x.scanPacked([]byte{pEdge}, func(k, v []byte) error {
		from := binary.BigEndian.Uint32(k[1:])
		return decodeEdges(v, func(e Edge) error { return fn(from, e) })
	})
}

// AllReferrers calls fn for every (subject, referrer) pair.
func (x *Index) AllReferrers(fn func(uint32, uint32) error) error {
	return x.scan([]byte{pSubject}, true, func(k, _ []byte) error {
		return fn(binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint32(k[5:]))
	})
}

// Warnings calls fn for every problem recorded while scanning.
func (x *Index) Warnings(fn func(Warning) error) error {
	return x.scan([]byte{pWarning}, false, func(_, v []byte) error {
		var w Warning
		if err := json.Unmarshal(v, &w); err != nil {
			return err
		}
		return fn(w)
	})
}

// The sweep journal lives in the index beside the graph, under its own prefix, and
// survives Build so that a rerun after a crash sees what was already deleted.
//
//	J<path>  -> time deleted (RFC 3339)
//	Jp       -> the plan being swept (json), removed when the sweep finishes
const pJournal = 'J'

// Journaled reports whether path was recorded as deleted.
func (x *Index) Journaled(path string) (bool, error) {
	return x.get(append([]byte{pJournal, '/'}, path...), func([]byte) error { return nil })
}

// RecordDeleted journals that path was deleted.
func (x *Index) RecordDeleted(path string) error {
	return x.db.Update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{pJournal, '/'}, path...), []byte(time.Now().UTC().Format(time.RFC3339)))
	})
}

// JournalPlan records the plan a sweep is executing (nil clears it and the journal).
func (x *Index) JournalPlan(plan []byte) error {
	if plan == nil {
		return x.db.DropPrefix([]byte{pJournal})
	}
	return x.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{pJournal, 'p'}, plan) })
}

// UnfinishedPlan returns the plan of a sweep that did not finish, or nil.
func (x *Index) UnfinishedPlan() ([]byte, error) {
	var b []byte
	_, err := x.get([]byte{pJournal, 'p'}, func(v []byte) error { b = append([]byte(nil), v...); return nil })
	return b, err
}

// JournalCount returns how many deletions are journaled.
func (x *Index) JournalCount() (int, error) {
	n := 0
	err := x.scan([]byte{pJournal, '/'}, true, func(_, _ []byte) error { n++; return nil })
	return n, err
}
