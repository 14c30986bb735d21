package graph

import (
	"encoding/binary"
	"encoding/json"
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
//	C<ver>P<digest> -> the parse (JSON of Parsed)
//
// ver changes whenever what a parse yields does: old entries are then never read.
const (
	pCache       = 'C'
	cacheVersion = 1
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
	ok, err := x.get(cacheKey('P', d), func(v []byte) error { return json.Unmarshal(v, &p) })
	return p, ok && err == nil, err
}

// putCache writes a parse and, when known, its validator.
func putCache(wb *badger.WriteBatch, d digest.Digest, p Parsed, v *validator) error {
	j, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := wb.Set(cacheKey('P', d), j); err != nil {
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

// ClearManifestCache forgets every cached parse: the next build reads every
// manifest again.
func (x *Index) ClearManifestCache() error {
	return x.db.DropPrefix([]byte{pCache})
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
		var v []byte
		ok, err := b.idx.get(chunkKey(chunk*idChunk), func(ref []byte) (err error) { v, err = b.idx.packs.get(ref, nil); return err })
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
			return b.wb.Set(cacheKey('V', d), validator{blob.Size, unixNanos(blob.ModTime)}.encode())
		})
		if err != nil {
			return err
		}
	}
	b.fresh = nil
	return b.cache.dropUnseen(b.wb)
}

// Tag links are cached too, for runs that delete nothing (WithLinkCache): unlike a
// manifest, a tag link is rewritten in place when the tag moves. Its listed size and
// time tell the same file from a rewritten one only if the rewrite changed them; an
// object store's times are whole seconds, so a link is cached only when its time is
// at least a second before it was read: a later rewrite then has a later time.
//
//	C<ver>L<path> -> size i64, modtime (unix ns) i64, content
type linkCache struct{ x *Index }

func (c linkCache) Link(path string, size int64, mt time.Time) ([]byte, bool) {
	var content []byte
	ok, err := c.x.get(append([]byte{pCache, cacheVersion, 'L'}, path...), func(v []byte) error {
		if len(v) < 16 || int64(binary.BigEndian.Uint64(v)) != size || int64(binary.BigEndian.Uint64(v[8:])) != unixNanos(mt) {
			return nil
		}
		content = append([]byte(nil), v[16:]...)
		return nil
	})
	return content, ok && err == nil && content != nil
}

// cacheLink records a tag link read in this build, when it may be trusted later.
func (b *builder) cacheLink(e storage.Entry) error {
	if b.links == nil || e.LinkCached || e.Warning != "" || e.Target == "" || e.ModTime.IsZero() || e.ReadAt.IsZero() {
		return nil
	}
	if !e.ModTime.Before(e.ReadAt.Truncate(time.Second).Add(-time.Second)) {
		return nil
	}
	v := validator{e.Size, unixNanos(e.ModTime)}.encode()
	return b.wb.Set(append([]byte{pCache, cacheVersion, 'L'}, e.Path...), append(v, e.Target...))
}

// dropUnseenLinks deletes the cached tag links this build did not list.
func (b *builder) dropUnseenLinks() error {
	if b.links == nil {
		return nil
	}
	prefix := []byte{pCache, cacheVersion, 'L'}
	var gone [][]byte
	err := b.idx.scan(prefix, true, func(k, _ []byte) error {
		if !b.links[string(k[len(prefix):])] {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range gone {
		if err := b.wb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
