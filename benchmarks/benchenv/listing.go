package benchenv

import (
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
	"github.com/johannesboyne/gofakes3"
)

// seekingBackend wraps a gofakes3 backend so that a listing costs what it returns,
// as S3's does. s3mem answers every listing by going through its bucket from the
// first key to the last (and splits each key to match a delimiter); 256 prefix
// listings of a 30,000-key bucket then cost the server more CPU, on the cores the
// client shares, than the client's whole run. The wrapper keeps an ordered index
// of each bucket's keys, with what a listing says of each, and answers listings
// from it; everything else goes to the wrapped backend, whose answers the index
// copies after each write.
type seekingBackend struct {
	gofakes3.Backend
	mu      sync.RWMutex
	buckets map[string]*btree.BTreeG[*gofakes3.Content]
	looked  atomic.Int64 // keys listings went through
}

func newSeekingBackend(b gofakes3.Backend) *seekingBackend {
	return &seekingBackend{Backend: b, buckets: map[string]*btree.BTreeG[*gofakes3.Content]{}}
}

func byKey(a, b *gofakes3.Content) bool { return a.Key < b.Key }

// refresh copies into the index what the backend holds at key now. With s.mu held
// from the backend's answer to the index's change, so that of two writes of a key,
// made in either order, the index keeps what the backend kept.
func (s *seekingBackend) refresh(bucket, key string) {
	t := s.buckets[bucket]
	if t == nil {
		return
	}
	// The backend's own listing, from just before key, one key long: a seek.
	page := gofakes3.ListBucketPage{MaxKeys: 1}
	if before := justBefore(key); before != "" {
		page.Marker, page.HasMarker = before, true
	}
	l, err := s.Backend.ListBucket(bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: key}, page)
	if err == nil && len(l.Contents) == 1 && l.Contents[0].Key == key {
		t.ReplaceOrInsert(l.Contents[0])
		return
	}
	t.Delete(&gofakes3.Content{Key: key})
}

// justBefore is a string that sorts right before key: no S3 key (valid UTF-8, so
// without the byte 0xff) lies between the two. "" when key has none.
func justBefore(key string) string {
	if key == "" || key[len(key)-1] == 0 {
		return ""
	}
	return key[:len(key)-1] + string([]byte{key[len(key)-1] - 1, 0xff})
}

// pastPrefix is the first string after every string that starts with p.
func pastPrefix(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] < 0xff {
			return p[:i] + string([]byte{p[i] + 1})
		}
	}
	return "" // none: p is all 0xff
}

// ListBucket implements gofakes3.Backend as s3mem does (prefix.Match decides, a
// common prefix counts once), but from the prefix (or after the marker) on, while
// keys have the prefix, jumping past the keys under a common prefix.
func (s *seekingBackend) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.buckets[name]
	if t == nil {
		return s.Backend.ListBucket(name, prefix, page)
	}
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	from := ""
	if prefix.HasPrefix {
		from = prefix.Prefix
	}
	if page.HasMarker {
		from = max(from, page.Marker+"\x00")
	}
	out := gofakes3.NewObjectList()
	var (
		n          int64
		match      gofakes3.PrefixMatch
		last       string // the last key passed: the next page's marker
		lastPrefix string
	)
	for {
		next := ""
		t.AscendGreaterOrEqual(&gofakes3.Content{Key: from}, func(c *gofakes3.Content) bool {
			s.looked.Add(1)
			switch {
			case prefix.HasPrefix && !strings.HasPrefix(c.Key, prefix.Prefix):
				return false // past the prefix: no more
			case !prefix.Match(c.Key, &match):
				return true
			case match.CommonPrefix && match.MatchedPart == lastPrefix:
				last = c.Key
				return true // counted once
			case page.MaxKeys > 0 && n >= page.MaxKeys:
				out.IsTruncated = true
				return false
			}
			n++
			last = c.Key
			if match.CommonPrefix {
				out.AddPrefix(match.MatchedPart)
				lastPrefix = match.MatchedPart
				if strings.HasPrefix(c.Key, lastPrefix) {
					next = pastPrefix(lastPrefix)
					return false
				}
				return true
			}
			cp := *c // gofakes3 may fill in the owner
			out.Add(&cp)
			return true
		})
		if next == "" {
			break
		}
		// The page's marker is the last key under the prefix jumped.
		t.DescendLessOrEqual(&gofakes3.Content{Key: next}, func(c *gofakes3.Content) bool {
			if c.Key == next {
				return true
			}
			last = c.Key
			return false
		})
		from = next
	}
	if out.IsTruncated {
		out.NextMarker = last
	}
	return out, nil
}

// CreateBucket implements gofakes3.Backend.
func (s *seekingBackend) CreateBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Backend.CreateBucket(name); err != nil {
		return err
	}
	s.buckets[name] = btree.NewG(32, byKey)
	return nil
}

// DeleteBucket implements gofakes3.Backend.
func (s *seekingBackend) DeleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Backend.DeleteBucket(name); err != nil {
		return err
	}
	delete(s.buckets, name)
	return nil
}

// ForceDeleteBucket implements gofakes3.Backend.
func (s *seekingBackend) ForceDeleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Backend.ForceDeleteBucket(name); err != nil {
		return err
	}
	delete(s.buckets, name)
	return nil
}

// PutObject implements gofakes3.Backend.
func (s *seekingBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	r, err := s.Backend.PutObject(bucket, key, meta, input, size, conditions)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh(bucket, key)
	return r, err
}

// CopyObject implements gofakes3.Backend.
func (s *seekingBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	r, err := s.Backend.CopyObject(srcBucket, srcKey, dstBucket, dstKey, meta)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh(dstBucket, dstKey)
	return r, err
}

// DeleteObject implements gofakes3.Backend.
func (s *seekingBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	r, err := s.Backend.DeleteObject(bucket, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh(bucket, key)
	return r, err
}

// DeleteMulti implements gofakes3.Backend.
func (s *seekingBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	r, err := s.Backend.DeleteMulti(bucket, keys...)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.refresh(bucket, k)
	}
	return r, err
}
