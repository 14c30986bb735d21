package graph

import "math/bits"

// Bitset is a set of dense ids: a bit each.
type Bitset []uint64

// NewBitset returns a set with room for ids up to n.
func NewBitset(n uint32) Bitset { return make(Bitset, n/64+1) }

// Set adds i and reports whether it was there already. The set grows as needed.
func (s *Bitset) Set(i uint32) bool {
	for int(i/64) >= len(*s) {
		*s = append(*s, 0)
	}
	old := (*s)[i/64]&(1<<(i%64)) != 0
	(*s)[i/64] |= 1 << (i % 64)
	return old
}

// Has reports whether i is in the set.
func (s Bitset) Has(i uint32) bool { return int(i/64) < len(s) && s[i/64]&(1<<(i%64)) != 0 }

// Clear removes i.
func (s Bitset) Clear(i uint32) {
	if int(i/64) < len(s) {
		s[i/64] &^= 1 << (i % 64)
	}
}

// AppendIDs appends the ids in the set to dst, in ascending order.
func (s Bitset) AppendIDs(dst []uint32) []uint32 {
	for i, w := range s {
		for w != 0 {
			dst = append(dst, uint32(i*64+bits.TrailingZeros64(w)))
			w &= w - 1
		}
	}
	return dst
}

// Sizes holds a size per id in 4 bytes, telling an unknown size from 0; the rare
// size of 4 GiB or more is kept apart. It grows as needed.
type Sizes struct {
	small []uint32 // size+1; 0 unknown; bigSize: in big
	big   map[uint32]int64
}

const bigSize = 1<<32 - 1

// NewSizes returns a table with room for ids up to n.
func NewSizes(n uint32) Sizes { return Sizes{small: make([]uint32, n+1)} }

// Set records id's size.
func (z *Sizes) Set(id uint32, n int64) {
	if int(id) >= len(z.small) {
		z.small = append(z.small, make([]uint32, int(id)+1-len(z.small))...)
	}
	if n >= 0 && n < bigSize-1 {
		z.small[id] = uint32(n + 1)
		return
	}
	if z.big == nil {
		z.big = map[uint32]int64{}
	}
	z.small[id], z.big[id] = bigSize, n
}

// Lookup returns id's size and whether it is known.
func (z *Sizes) Lookup(id uint32) (int64, bool) {
	if int(id) >= len(z.small) || z.small[id] == 0 {
		return 0, false
	}
	if z.small[id] == bigSize {
		return z.big[id], true
	}
	return int64(z.small[id]) - 1, true
}

// Of returns id's size, 0 when unknown.
func (z *Sizes) Of(id uint32) int64 {
	n, _ := z.Lookup(id)
	return n
}

// OfSorted sets out[i] to the size of ids[i], 0 when unknown.
func (z *Sizes) OfSorted(ids []uint32, out []int64) error {
	for i, id := range ids {
		out[i] = z.Of(id)
	}
	return nil
}
