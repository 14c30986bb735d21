package graph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestIDTableCollisions(t *testing.T) {
	mk := func(prefix string, n int) digest.Digest {
		h := prefix + fmt.Sprintf("%x", n)
		return digest.Digest("sha256:" + h + strings.Repeat("0", 64-len(h)))
	}
	var tab idTable
	all := map[digest.Digest]uint32{}
	id := uint32(0)
	for i := 0; i < 1000; i++ {
		id++
		d := mk("", i*7919+1) // distinct prefixes
		all[d] = id
		tab.addBlob(d, id)
	}
	// Three blobs sharing their first 64 bits.
	for i := 0; i < 3; i++ {
		id++
		d := mk("deadbeefcafef00d", i+1)
		all[d] = id
		tab.addBlob(d, id)
	}
	byID := map[uint32]digest.Digest{}
	for d, i := range all {
		byID[i] = d
	}
	if err := tab.seal(func(i uint32) (digest.Digest, error) { return byID[i], nil }); err != nil {
		t.Fatal(err)
	}
	for d, want := range all {
		if got := tab.lookup(d); got != want {
			t.Errorf("lookup(%s) = %d, want %d", d, got, want)
		}
	}
	if got := tab.lookup(mk("deadbeefcafef00d", 99)); got != 0 {
		t.Errorf("unknown digest with a colliding prefix = %d, want 0", got)
	}
	if got := tab.lookup(mk("ffff", 1)); got != 0 {
		t.Errorf("unknown digest = %d, want 0", got)
	}
	if got := tab.lookup("sha512:" + digest.Digest(strings.Repeat("ab", 64))); got != 0 {
		t.Errorf("sha512 digest = %d", got)
	}
}
