package graph

import (
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sort"

	"github.com/opencontainers/go-digest"
)

// idTable maps the digests of listed blobs to their ids in 12 bytes a blob: the first
// 64 bits of the digest and the id, sorted once the blob store is listed. The memory
// of a scan then grows by 12 bytes per blob instead of a map entry with the whole
// digest string (about 120 bytes). Digests that are not blobs (references to missing
// data) are few and live in an exact map.
//
// Blobs sharing a 64-bit prefix (chance about n²/2^65) are resolved exactly. A
// missing digest that shares a prefix with a listed blob (about m·n/2^64) maps to that
// blob: it can only make a blob look referenced, never free one.
//
// The table is split into 256 buckets by the first byte, each grown on its own: one
// array of ten million entries would, while growing, briefly hold itself twice.
type idTable struct {
	buckets [256]idBucket
	sealed  bool
	exact   map[digest.Digest]uint32
}

type idBucket struct {
	keys []uint64
	ids  []uint32
}

// prefix64 returns the first 64 bits of d's hex, or false when d is not hex.
func prefix64(d digest.Digest) (uint64, bool) {
	enc := d.Encoded()
	if len(enc) < 16 {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(enc[:16])); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

func (t *idTable) addBlob(d digest.Digest, id uint32) {
	k, ok := prefix64(d)
	if !ok || d.Algorithm() != digest.SHA256 {
		t.addExact(d, id)
		return
	}
	b := &t.buckets[k>>56]
	b.keys = append(b.keys, k)
	b.ids = append(b.ids, id)
}

func (t *idTable) addExact(d digest.Digest, id uint32) {
	if t.exact == nil {
		t.exact = map[digest.Digest]uint32{}
	}
	t.exact[d] = id
}

func (b *idBucket) Len() int           { return len(b.keys) }
func (b *idBucket) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b *idBucket) Swap(i, j int) {
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	b.ids[i], b.ids[j] = b.ids[j], b.ids[i]
}

// seal sorts the table. Colliding prefixes are moved to the exact map, resolved
// with digestOf, and their slots are zeroed so lookups go there.
func (t *idTable) seal(digestOf func(id uint32) (digest.Digest, error)) error {
	t.sealed = true
	for n := range t.buckets {
		b := &t.buckets[n]
		sort.Sort(b)
		for i := 1; i < len(b.keys); i++ {
			if b.keys[i] != b.keys[i-1] {
				continue
			}
			for _, j := range []int{i - 1, i} {
				if b.ids[j] == 0 {
					continue
				}
				d, err := digestOf(b.ids[j])
				if err != nil {
					return err
				}
				t.addExact(d, b.ids[j])
				b.ids[j] = 0
			}
		}
		// Copied to their length: append's spare capacity is up to a quarter more.
		b.keys, b.ids = slices.Clone(b.keys), slices.Clone(b.ids)
	}
	return nil
}

// lookup returns the id of d, or 0.
func (t *idTable) lookup(d digest.Digest) uint32 {
	if id, ok := t.exact[d]; ok {
		return id
	}
	k, ok := prefix64(d)
	if !ok || d.Algorithm() != digest.SHA256 {
		return 0
	}
	b := &t.buckets[k>>56]
	i, found := slices.BinarySearch(b.keys, k)
	if !found {
		return 0
	}
	return b.ids[i] // 0 when the prefix collided and d is not among the exact ones
}
