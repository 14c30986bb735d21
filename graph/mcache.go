package graph

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

// The manifest cache makes the index incremental. A manifest is content-addressed:
// its parse holds for as long as the blob it came from is the same file, which a
// build checks by the blob's size and modification time (from the listing where the
// driver lists them, as object stores do; from a stat where it does not). A rerun
// over an unchanged registry then reads no manifest blob. The cache outlives the
// builds (its keys are not among graphPrefixes); entries of blobs gone from the
// listing are dropped at the end of a build.
//
//	C<ver>V<digest> -> validator: size i64, modtime (unix ns) i64
//	C<ver>P<digest> -> a reference into the mcache pack file, where the parse is
//	                   (encodeParsed): a manifest list of a hundred layers is kilobytes,
//	                   which badger would map into memory
//
// ver changes whenever what a parse yields does: old entries are then never read.
// The pack file only grows; when less than half of it is live, the cache is
// cleared and the next build reads every manifest again.
const (
	pCache       = 'C'
	cacheVersion = 2
)

func cacheKey(kind byte, d digest.Digest) []byte {
	return append([]byte{pCache, cacheVersion, kind}, d...)
}

// validator says which file a cached parse came from.
type validator struct{ size, mt int64 }

func (v validator) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(v.size))
	return binary.BigEndian.AppendUint64(b, uint64(v.mt))
}

// cached is one validator loaded at the start of a build.
type cached struct {
	d    digest.Digest
	v    validator
	seen bool // listed in this build
}

// manifestCache is the cache's validators, for lookups while the blob store is
// listed (one per blob): some 150 bytes a manifest.
type manifestCache struct {
	entries []cached
	sha256  map[[32]byte]int32 // index into entries
	other   map[digest.Digest]int32
}

func (x *Index) loadManifestCache() (*manifestCache, error) {
	c := &manifestCache{sha256: map[[32]byte]int32{}, other: map[digest.Digest]int32{}}
	prefix := []byte{pCache, cacheVersion, 'V'}
	err := x.scan(prefix, false, func(k, v []byte) error {
		if len(v) != 16 {
			return nil // not written by this version: a miss
		}
		c.entries = append(c.entries, cached{
			d: digest.Digest(k[len(prefix):]),
			v: validator{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))},
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read manifest cache: %w", err)
	}
	for i, e := range c.entries {
		if raw, ok := storage.SHA256Bytes(e.d); ok {
			c.sha256[raw] = int32(i)
		} else {
			c.other[e.d] = int32(i)
		}
	}
	return c, nil
}

// find returns the entry of d, or nil.
func (c *manifestCache) find(d digest.Digest) *cached {
	if c == nil || len(c.entries) == 0 {
		return nil
	}
	i, ok := int32(0), false
	if raw, is := storage.SHA256Bytes(d); is {
		i, ok = c.sha256[raw]
	} else {
		i, ok = c.other[d]
	}
	if !ok {
		return nil
	}
	return &c.entries[i]
}

// cachedParse reads the parse of d.
func (x *Index) cachedParse(d digest.Digest) (Parsed, bool, error) {
	var p Parsed
	ok, err := x.get(cacheKey('P', d), func(ref []byte) error {
		b, err := x.mcache.get(ref, nil)
		if err != nil {
			return err
		}
		p, err = decodeParsed(b)
		return err
	})
	return p, ok && err == nil, err
}

// putCache writes a parse and, when known, its validator.
func (x *Index) putCache(wb *badger.WriteBatch, d digest.Digest, p Parsed, v *validator) error {
	ref, err := x.mcache.put(encodeParsed(p))
	if err != nil {
		return err
	}
	if err := wb.Set(cacheKey('P', d), ref); err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return wb.Set(cacheKey('V', d), v.encode())
}

// dropUnseen deletes the entries of blobs this build did not list.
func (c *manifestCache) dropUnseen(wb *badger.WriteBatch) error {
	for _, e := range c.entries {
		if e.seen {
			continue
		}
		if err := wb.Delete(cacheKey('V', e.d)); err != nil {
			return err
		}
		if err := wb.Delete(cacheKey('P', e.d)); err != nil {
			return err
		}
	}
	return nil
}

// ClearManifestCache forgets every cached parse and tag link: the next build reads
// every manifest again.
func (x *Index) ClearManifestCache() error {
	if err := x.db.DropPrefix([]byte{pCache}); err != nil {
		return err
	}
	return x.mcache.reset()
}

// mcacheCompactMin is the least size of the mcache file worth clearing.
var mcacheCompactMin int64 = 64 << 20

// compactManifestCache clears the cache when most of its pack file is parses no
// entry points at any more (replaced or dropped), and the file is worth the
// trouble.
func (x *Index) compactManifestCache() error {
	if x.mcache.size < mcacheCompactMin {
		return nil
	}
	var live int64
	for _, kind := range []byte{'P', 'L'} {
		err := x.scan([]byte{pCache, cacheVersion, kind}, false, func(_, ref []byte) error {
			if len(ref) == packRefLen && ref[0] == packFar {
				live += int64(binary.BigEndian.Uint32(ref[9:]))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if live*2 >= x.mcache.size {
		return nil
	}
	return x.ClearManifestCache()
}

// encodeParsed writes a parse compactly: media and artifact types, then each
// reference's kind, digest (32 raw bytes for sha256), size and platform.
func encodeParsed(p Parsed) []byte {
	b := appendString(nil, p.MediaType)
	b = appendString(b, p.ArtifactType)
	b = binary.AppendUvarint(b, uint64(len(p.Refs)))
	for _, r := range p.Refs {
		b = append(b, byte(r.Kind))
		if raw, ok := storage.SHA256Bytes(r.Digest); ok {
			b = append(b, 1)
			b = append(b, raw[:]...)
		} else {
			b = append(b, 0)
			b = appendString(b, string(r.Digest))
		}
		b = binary.AppendVarint(b, r.Size)
		b = appendString(b, r.Platform)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errCacheEncoding = fmt.Errorf("%w: a cached manifest parse is malformed", ErrDamaged)

func decodeParsed(b []byte) (Parsed, error) {
	var p Parsed
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok bool
	if p.MediaType, ok = str(); !ok {
		return p, errCacheEncoding
	}
	if p.ArtifactType, ok = str(); !ok {
		return p, errCacheEncoding
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return p, errCacheEncoding
	}
	b = b[k:]
	p.Refs = make([]Ref, 0, n)
	for range n {
		if len(b) < 2 {
			return p, errCacheEncoding
		}
		r := Ref{Kind: EdgeKind(b[0])}
		raw := b[1] == 1
		b = b[2:]
		if raw {
			if len(b) < 32 {
				return p, errCacheEncoding
			}
			r.Digest = digest.Digest("sha256:" + hex.EncodeToString(b[:32]))
			b = b[32:]
		} else {
			s, ok := str()
			if !ok {
				return p, errCacheEncoding
			}
			r.Digest = digest.Digest(s)
		}
		size, k := binary.Varint(b)
		if k <= 0 {
			return p, errCacheEncoding
		}
		r.Size, b = size, b[k:]
		if r.Platform, ok = str(); !ok {
			return p, errCacheEncoding
		}
		p.Refs = append(p.Refs, r)
	}
	if len(b) != 0 {
		return p, errCacheEncoding
	}
	return p, nil
}

// finishCache writes the validators of manifests read from blobs the listing gave a
// size and time, from their id records (a pass over the chunks they are in), and
// drops the entries of blobs no longer listed.
func (b *builder) finishCache() error {
	if b.cache == nil {
		return nil
	}
	if err := b.flush(); err != nil {
		return err
	}
	slices.Sort(b.fresh)
	for i := 0; i < len(b.fresh); {
		chunk := b.fresh[i] / idChunk
		want := map[uint32]bool{}
		for ; i < len(b.fresh) && b.fresh[i]/idChunk == chunk; i++ {
			want[b.fresh[i]] = true
		}
		v, ok, err := b.idx.getPacked(chunkKey(chunk * idChunk))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("index has no id chunk %d", chunk)
		}
		err = decodeIDChunk(chunk*idChunk, v, func(id uint32, d digest.Digest, blob *Blob) error {
			if !want[id] || blob == nil || blob.ModTime.IsZero() {
				return nil // no time listed: the next build stats it
			}
			if f, ok := b.earlyFiles[id]; ok && !f.cacheable(blob.Size, unixNanos(blob.ModTime)) {
				return nil // perhaps not the file read early: the next build reads it
			}
			return b.wb.Set(cacheKey('V', d), validator{blob.Size, unixNanos(blob.ModTime)}.encode())
		})
		if err != nil {
			return err
		}
	}
	b.fresh, b.earlyFiles = nil, nil
	return b.cache.dropUnseen(b.wb)
}

// Tag links are cached too, for runs that delete nothing (WithLinkCache): unlike a
// manifest, a tag link is rewritten in place when the tag moves. Its listed size and
// time tell the same file from a rewritten one only if the rewrite changed them; an
// object store's times are whole seconds, so a link is cached only when its time is
// at least a second before it was read: a later rewrite then has a later time.
//
//	C<ver>L<sha256(path)[:16]> -> a reference into mcache: size i64, modtime
//	                               (unix ns) i64, path length u16, path, content
//
// Short keys and the record in the pack file keep badger, whose tables are mapped
// into memory, to some 40 bytes a tag.
type linkCache struct{ x *Index }

func linkKey(path string) []byte {
	h := sha256.Sum256([]byte(path))
	return append([]byte{pCache, cacheVersion, 'L'}, h[:16]...)
}

func (c linkCache) Link(path string, size int64, mt time.Time) ([]byte, bool) {
	var content []byte
	ok, err := c.x.get(linkKey(path), func(ref []byte) error {
		v, err := c.x.mcache.get(ref, nil)
		if err != nil || len(v) < 18 || int64(binary.BigEndian.Uint64(v)) != size || int64(binary.BigEndian.Uint64(v[8:])) != unixNanos(mt) {
			return err
		}
		n := int(binary.BigEndian.Uint16(v[16:]))
		if len(v) < 18+n || string(v[18:18+n]) != path {
			return nil
		}
		content = append([]byte(nil), v[18+n:]...)
		return nil
	})
	return content, ok && err == nil && content != nil
}

// cacheLink records a tag link read in this build, when it may be trusted later.
func (b *builder) cacheLink(e storage.Entry) error {
	if !b.linkCacheOn || e.LinkCached || e.Warning != "" || e.Target == "" || e.ModTime.IsZero() || e.ReadAt.IsZero() {
		return nil
	}
	if !e.ModTime.Before(e.ReadAt.Truncate(time.Second).Add(-time.Second)) {
		return nil
	}
	v := validator{e.Size, unixNanos(e.ModTime)}.encode()
	v = binary.BigEndian.AppendUint16(v, uint16(len(e.Path)))
	v = append(append(v, e.Path...), e.Target...)
	ref, err := b.idx.mcache.put(v)
	if err != nil {
		return err
	}
	return b.wb.Set(linkKey(e.Path), ref)
}

// dropStaleLinks forgets every cached tag link when the cache holds more than twice
// as many as this build listed: links of deleted tags pile up otherwise, and a
// seen-set of every tag path would cost memory in proportion to the tags.
func (b *builder) dropStaleLinks() error {
	if !b.linkCacheOn {
		return nil
	}
	n := 0
	err := b.idx.scan([]byte{pCache, cacheVersion, 'L'}, true, func(_, _ []byte) error { n++; return nil })
	if err != nil || n <= 2*max(b.tagLinks, 1024) {
		return err
	}
	if err := b.flush(); err != nil {
		return err
	}
	return b.idx.db.DropPrefix([]byte{pCache, cacheVersion, 'L'})
}
