package storage

import (
	"fmt"
	"slices"
	"testing"
)

// The ranges cut blobs/sha256 after the probe's last file into a partition: every
// key after it falls in exactly one range, whatever the strays are named, and the
// ranges hold about rangeKeys files at the probe's density.
func TestBlobRangesPartition(t *testing.T) {
	var prefixes, keys []string
	for i := range 256 {
		p := fmt.Sprintf("%s/%02x", sha256Dir, i)
		prefixes = append(prefixes, p)
		for j := range 30 {
			keys = append(keys, fmt.Sprintf("%s/%02x%04d/data", p, i, j))
		}
	}
	// Strays: a file named like a prefix, one that sorts between a prefix's name
	// and its files, one after every prefix; each is listed as a child too.
	for _, s := range []string{"/3a", "/3a-x", "/stray"} {
		keys = append(keys, sha256Dir+s)
		prefixes = append(prefixes, sha256Dir+s)
	}
	slices.Sort(keys)
	for _, probe := range []int{0, 1, 500, 999} {
		t.Run(fmt.Sprint(probe), func(t *testing.T) {
			last := ""
			if probe > 0 {
				last = keys[probe-1]
			}
			rs := blobRanges(slices.Clone(prefixes), last, probe)
			in := func(k string, r keyRange) bool { return !r.before(k) && !r.past(k) }
			most := 0
			for _, k := range keys {
				n := 0
				for _, r := range rs {
					if in(k, r) {
						n++
					}
				}
				switch {
				case k <= last && n != 0:
					t.Errorf("key %s, found by the probe, is in %d ranges", k, n)
				case k > last && n != 1:
					t.Errorf("key %s is in %d ranges, want 1", k, n)
				}
			}
			for _, r := range rs {
				n := 0
				for _, k := range keys {
					if in(k, r) {
						n++
					}
				}
				most = max(most, n)
			}
			if probe <= 1 {
				// No density known: a prefix a range, as before.
				if len(rs) < 256 {
					t.Errorf("%d ranges with no density known, want one a prefix", len(rs))
				}
				return
			}
			if most > probeKeys {
				t.Errorf("a range holds %d keys: past a page", most)
			}
			if want := (len(keys) - probe) / probeKeys; len(rs) > 2*want+2 {
				t.Errorf("%d ranges for %d keys", len(rs), len(keys)-probe)
			}
			t.Logf("%d ranges, the largest %d keys", len(rs), most)
		})
	}
}
