package benchenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// listAll follows a listing's pages to the end: the keys (with size and ETag) and
// the common prefixes, each once, and the number of pages. strict: a common prefix
// on two pages is an error, as on S3 (s3mem repeats one that a page ended in).
func listAll(t *testing.T, b gofakes3.Backend, prefix gofakes3.Prefix, maxKeys int64, strict bool) (keys, prefixes []string, pages int) {
	t.Helper()
	page := gofakes3.ListBucketPage{MaxKeys: maxKeys}
	seen := map[string]bool{}
	for {
		pages++
		if pages > 10000 {
			t.Fatalf("listing %+v never ends", prefix)
		}
		l, err := b.ListBucket("b", &prefix, page)
		if err != nil {
			t.Fatal(err)
		}
		if maxKeys > 0 && int64(len(l.Contents)+len(l.CommonPrefixes)) > maxKeys {
			t.Fatalf("a page of %d keys and prefixes, max %d", len(l.Contents)+len(l.CommonPrefixes), maxKeys)
		}
		for _, c := range l.Contents {
			keys = append(keys, fmt.Sprintf("%s %d %s", c.Key, c.Size, c.ETag))
		}
		for _, p := range l.CommonPrefixes {
			if strict && seen[p.Prefix] {
				t.Errorf("%+v, max %d: common prefix %s on two pages", prefix, maxKeys, p.Prefix)
			}
			if !seen[p.Prefix] {
				seen[p.Prefix] = true
				prefixes = append(prefixes, p.Prefix)
			}
		}
		if !l.IsTruncated {
			return keys, prefixes, pages
		}
		page.Marker, page.HasMarker = l.NextMarker, true
	}
}

// The seeking backend lists what s3mem lists, for prefixes with and without a
// delimiter, page sizes from 1 up, after puts, overwrites and deletes; and each
// key with the time, size and ETag s3mem gives it.
func TestSeekingBackendListsAsS3mem(t *testing.T) {
	plain, seek := s3mem.New(), newSeekingBackend(s3mem.New())
	for _, b := range []gofakes3.Backend{plain, seek} {
		if err := b.CreateBucket("b"); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"a", "b", "ab", "a0", "z", "_x"}
	var all []string
	randomKey := func() string {
		var k []string
		for range 1 + rng.IntN(4) {
			k = append(k, parts[rng.IntN(len(parts))])
		}
		key := strings.Join(k, "/")
		if rng.IntN(8) == 0 {
			key += "/"
		}
		return key
	}
	put := func(key string, body []byte) {
		for _, b := range []gofakes3.Backend{plain, seek} {
			if _, err := b.PutObject("b", key, nil, bytes.NewReader(body), int64(len(body)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 300 {
		key := randomKey()
		all = append(all, key)
		put(key, []byte(strings.Repeat("x", i%7)))
	}
	for i := range 40 { // overwrites, with other sizes
		put(all[rng.IntN(len(all))], []byte(strings.Repeat("y", 10+i)))
	}
	for range 40 {
		key := all[rng.IntN(len(all))]
		for _, b := range []gofakes3.Backend{plain, seek} {
			if _, err := b.DeleteObject("b", key); err != nil {
				t.Fatal(err)
			}
		}
	}
	var gone []string
	for range 20 {
		gone = append(gone, all[rng.IntN(len(all))])
	}
	for _, b := range []gofakes3.Backend{plain, seek} {
		if _, err := b.DeleteMulti("b", gone...); err != nil {
			t.Fatal(err)
		}
	}

	prefixes := []*string{nil}
	for _, p := range []string{"", "a", "a/", "a/b", "a/b/", "ab/", "z/a", "_x/", "q", "a/b/ab/z"} {
		prefixes = append(prefixes, &p)
	}
	slash := "/"
	checked := 0
	for _, p := range prefixes {
		for _, d := range []*string{nil, &slash} {
			for _, max := range []int64{0, 1, 2, 3, 7, 1000} {
				pre := gofakes3.NewPrefix(p, d)
				wantKeys, wantPrefixes, _ := listAll(t, plain, pre, max, false)
				gotKeys, gotPrefixes, _ := listAll(t, seek, pre, max, true)
				if !slices.Equal(gotKeys, wantKeys) || !slices.Equal(gotPrefixes, wantPrefixes) {
					t.Errorf("%+v, max %d:\nseeking %q %q\ns3mem   %q %q", pre, max, gotKeys, gotPrefixes, wantKeys, wantPrefixes)
				}
				checked += len(wantKeys) + len(wantPrefixes)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no listing found anything")
	}

	// What a listing says of each key is what the wrapped s3mem says.
	inner, err := seek.Backend.ListBucket("b", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := seek.ListBucket("b", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Contents) != len(inner.Contents) || len(got.Contents) == 0 {
		t.Fatalf("%d keys listed, s3mem holds %d", len(got.Contents), len(inner.Contents))
	}
	for i, c := range got.Contents {
		if w := inner.Contents[i]; c.Key != w.Key || !c.LastModified.Equal(w.LastModified.Time) || c.Size != w.Size || c.ETag != w.ETag {
			t.Errorf("listed %+v, s3mem has %+v", c, w)
		}
	}
}

// A listing of one prefix looks at the keys under it only: a bucket of many keys
// elsewhere does not make it slower (the reason for the wrapper).
func TestSeekingBackendSeeks(t *testing.T) {
	seek := newSeekingBackend(s3mem.New())
	if err := seek.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		if _, err := seek.PutObject("b", fmt.Sprintf("blobs/%02x/%06d", i%256, i), nil, bytes.NewReader(nil), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := seek.looked.Load()
	l, err := seek.ListBucket("b", &gofakes3.Prefix{HasPrefix: true, Prefix: "blobs/7f/"}, gofakes3.ListBucketPage{MaxKeys: 1000})
	if err != nil || len(l.Contents) != 78 {
		t.Fatalf("%v, %d keys", err, len(l.Contents))
	}
	if n := seek.looked.Load() - before; n > 79 { // the 78, and the next to see the prefix end
		t.Errorf("went through %d keys to list 78 of 20000", n)
	}
	// With a delimiter: a key a common prefix, not every key under it.
	before = seek.looked.Load()
	l, err = seek.ListBucket("b", &gofakes3.Prefix{HasPrefix: true, Prefix: "blobs/", HasDelimiter: true, Delimiter: "/"}, gofakes3.ListBucketPage{MaxKeys: 1000})
	if err != nil || len(l.CommonPrefixes) != 256 {
		t.Fatalf("%v, %d prefixes", err, len(l.CommonPrefixes))
	}
	if n := seek.looked.Load() - before; n > 257 {
		t.Errorf("went through %d keys to list 256 common prefixes", n)
	}
}
