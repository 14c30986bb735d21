package benchenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Synthetic is a read-only driver over a registry that is computed, not stored: n
// blobs named by their index, plus repositories of real manifests that reference
// them. Manifest bytes are generated on each read; only their digests are held, so a
// benchmark can list ten million blobs while what the process holds is the
// collector's. It only walks, as object stores do: scan it with storage.WithWalk(true).
// What it holds is compact (about 40 bytes a manifest): at 10M blobs its own memory
// would otherwise be a tenth of what the benchmark measures.
type Synthetic struct {
	n, repos, perRepo, refs int
	digests                 [][32]byte   // manifest k's sha256
	sizes                   []int32      // manifest k's size in bytes
	byDigest                []int32      // manifest ks in digest order
	byPrefix                [256][]int32 // manifest ks by first byte of digest
	mtime                   time.Time
}

var _ driver.StorageDriver = (*Synthetic)(nil)

const synthRoot = "/docker/registry/v2"

// synthBlob is the digest of virtual blob i: valid hex, spread evenly over prefixes
// and, like real digests, random-looking in its leading bits; unique by its tail.
func synthBlob(i int) digest.Digest {
	mix := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(i)>>7
	return digest.Digest(fmt.Sprintf("sha256:%02x%014x%048x", i%256, mix>>8, i/256))
}

// NewSynthetic makes n virtual blobs and repos repositories of perRepo manifests,
// which together reference about 98% of the blobs (one in ten references is one of
// 1000 shared base layers); the rest is garbage. Every other manifest is tagged.
func NewSynthetic(n, repos, perRepo int) *Synthetic {
	m := repos * perRepo
	s := &Synthetic{n: n, repos: repos, perRepo: perRepo, refs: max(2, n*98/100/max(1, m)),
		mtime: time.Now().Add(-48 * time.Hour)}
	for k := range m {
		b := s.content(k)
		sum := sha256.Sum256(b)
		s.digests = append(s.digests, sum)
		s.sizes = append(s.sizes, int32(len(b)))
		s.byDigest = append(s.byDigest, int32(k))
		s.byPrefix[sum[0]] = append(s.byPrefix[sum[0]], int32(k))
	}
	slices.SortFunc(s.byDigest, func(a, b int32) int { return bytes.Compare(s.digests[a][:], s.digests[b][:]) })
	return s
}

// digest returns manifest k's digest.
func (s *Synthetic) digest(k int32) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, s.digests[k][:])
}

// manifest returns the k of the manifest whose digest has hex enc, or false.
func (s *Synthetic) manifest(enc string) (int32, bool) {
	var raw [32]byte
	if len(enc) != 64 {
		return 0, false
	}
	if _, err := hex.Decode(raw[:], []byte(enc)); err != nil {
		return 0, false
	}
	i, ok := slices.BinarySearchFunc(s.byDigest, raw, func(k int32, raw [32]byte) int { return bytes.Compare(s.digests[k][:], raw[:]) })
	if !ok {
		return 0, false
	}
	return s.byDigest[i], true
}

// refsOf returns the blob indexes manifest k references: config first.
func (s *Synthetic) refsOf(k int) []int {
	out := make([]int, s.refs)
	live := max(1, s.n*98/100)
	for j := range out {
		if j%10 == 9 {
			out[j] = (k*7 + j) % min(1000, live) // a shared base layer
		} else {
			out[j] = (k*s.refs + j) % live
		}
	}
	return out
}

func (s *Synthetic) content(k int) []byte {
	man := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
	for j, b := range s.refsOf(k) {
		desc := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: synthBlob(b), Size: 1 << 20}
		if j == 0 {
			desc.MediaType = v1.MediaTypeImageConfig
			man.Config = desc
		} else {
			man.Layers = append(man.Layers, desc)
		}
	}
	b, _ := json.Marshal(man)
	return b
}

func (s *Synthetic) file(p string, size int64) driver.FileInfo {
	return driver.FileInfoInternal{FileInfoFields: driver.FileInfoFields{Path: p, Size: size, ModTime: s.mtime}}
}

func (s *Synthetic) dir(p string) driver.FileInfo {
	return driver.FileInfoInternal{FileInfoFields: driver.FileInfoFields{Path: p, IsDir: true, ModTime: s.mtime}}
}

// Name implements driver.StorageDriver.
func (s *Synthetic) Name() string { return "synthetic" }

// List implements driver.StorageDriver for the directories the scanner lists.
func (s *Synthetic) List(_ context.Context, p string) ([]string, error) {
	switch p {
	case synthRoot + "/blobs":
		return []string{synthRoot + "/blobs/sha256"}, nil
	case synthRoot + "/blobs/sha256":
		out := make([]string, 256)
		for i := range out {
			out[i] = fmt.Sprintf("%s/blobs/sha256/%02x", synthRoot, i)
		}
		return out, nil
	case synthRoot + "/repositories":
		return []string{synthRoot + "/repositories/synthetic"}, nil
	}
	return nil, driver.PathNotFoundError{Path: p, DriverName: s.Name()}
}

// Walk implements driver.StorageDriver for blob prefixes and the repositories.
func (s *Synthetic) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	if p == synthRoot+"/blobs" || p == synthRoot+"/blobs/sha256" {
		for b := range 256 {
			if err := s.Walk(ctx, fmt.Sprintf("%s/blobs/sha256/%02x", synthRoot, b), f, opts...); err != nil {
				return err
			}
		}
		return nil
	}
	if pre, ok := strings.CutPrefix(p, synthRoot+"/blobs/sha256/"); ok {
		var b byte
		if _, err := fmt.Sscanf(pre, "%02x", &b); err != nil {
			return driver.PathNotFoundError{Path: p}
		}
		for i := int(b); i < s.n; i += 256 {
			d := synthBlob(i)
			if err := f(s.file(fmt.Sprintf("%s/%s/data", p, d.Encoded()), 1<<20)); err != nil {
				return err
			}
		}
		for _, k := range s.byPrefix[b] {
			if err := f(s.file(fmt.Sprintf("%s/%s/data", p, s.digest(k).Encoded()), int64(s.sizes[k]))); err != nil {
				return err
			}
		}
		return nil
	}
	if p != synthRoot+"/repositories/synthetic" {
		return driver.PathNotFoundError{Path: p}
	}
	for r := 0; r < s.repos; r++ {
		base := path.Join(synthRoot, "repositories", fmt.Sprintf("synthetic/repo%d", r))
		if err := f(s.dir(base + "/_manifests")); err != nil {
			return err
		}
		var layers []int
		for i := 0; i < s.perRepo; i++ {
			k := r*s.perRepo + i
			if err := f(s.file(base+"/_manifests/revisions/sha256/"+s.digest(int32(k)).Encoded()+"/link", 71)); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := f(s.file(fmt.Sprintf("%s/_manifests/tags/t%d/current/link", base, i), 71)); err != nil {
					return err
				}
			}
			layers = append(layers, s.refsOf(k)...)
		}
		slices.Sort(layers)
		for _, b := range slices.Compact(layers) {
			if err := f(s.file(base+"/_layers/sha256/"+synthBlob(b).Encoded()+"/link", 71)); err != nil {
				return err
			}
		}
	}
	return nil
}

// GetContent implements driver.StorageDriver: manifests and tag links.
func (s *Synthetic) GetContent(_ context.Context, p string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(p, synthRoot+"/blobs/sha256/"); ok {
		parts := strings.Split(rest, "/")
		if len(parts) == 3 {
			if k, ok := s.manifest(parts[1]); ok {
				return s.content(int(k)), nil
			}
		}
	}
	var r, i int
	if _, err := fmt.Sscanf(p, synthRoot+"/repositories/synthetic/repo%d/_manifests/tags/t%d/current/link", &r, &i); err == nil && r < s.repos && i < s.perRepo {
		return []byte(s.digest(int32(r*s.perRepo + i))), nil
	}
	return nil, driver.PathNotFoundError{Path: p, DriverName: s.Name()}
}

// Reader implements driver.StorageDriver.
func (s *Synthetic) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	b, err := s.GetContent(ctx, p)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader(string(b[off:]))), nil
}

// Stat implements driver.StorageDriver.
func (s *Synthetic) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if b, err := s.GetContent(ctx, p); err == nil {
		return s.file(p, int64(len(b))), nil
	}
	return nil, driver.PathNotFoundError{Path: p, DriverName: s.Name()}
}

var errReadOnly = fmt.Errorf("synthetic driver is read-only")

// PutContent implements driver.StorageDriver.
func (s *Synthetic) PutContent(context.Context, string, []byte) error { return errReadOnly }

// Writer implements driver.StorageDriver.
func (s *Synthetic) Writer(context.Context, string, bool) (driver.FileWriter, error) {
	return nil, errReadOnly
}

// Move implements driver.StorageDriver.
func (s *Synthetic) Move(context.Context, string, string) error { return errReadOnly }

// Delete implements driver.StorageDriver.
func (s *Synthetic) Delete(context.Context, string) error { return errReadOnly }

// RedirectURL implements driver.StorageDriver.
func (s *Synthetic) RedirectURL(*http.Request, string) (string, error) { return "", nil }

var registerSynthetic sync.Once

// RegisterSynthetic registers the synthetic driver with distribution's driver
// factory as "synthetic" (parameters blobs, repos, perrepo), for programs that open
// storage from a registry config: a pipeline's workers. Drivers of the same
// parameters are shared.
func RegisterSynthetic() {
	registerSynthetic.Do(func() { factory.Register("synthetic", syntheticFactory{drivers: map[string]*Synthetic{}}) })
}

type syntheticFactory struct{ drivers map[string]*Synthetic }

func (f syntheticFactory) Create(_ context.Context, params map[string]any) (driver.StorageDriver, error) {
	var n [3]int
	for i, k := range []string{"blobs", "repos", "perrepo"} {
		v, err := strconv.Atoi(fmt.Sprint(params[k]))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("synthetic driver: parameter %s = %v, want a positive number", k, params[k])
		}
		n[i] = v
	}
	key := fmt.Sprint(n)
	syntheticMu.Lock()
	defer syntheticMu.Unlock()
	if d, ok := f.drivers[key]; ok {
		return d, nil
	}
	d := NewSynthetic(n[0], n[1], n[2])
	f.drivers[key] = d
	return d, nil
}

var syntheticMu sync.Mutex
