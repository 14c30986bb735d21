package benchenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Synthetic is a read-only driver over a registry that is computed, not stored: n
// blobs named by their index, plus repositories of real manifests that reference
// them. It lets a benchmark list ten million blobs while holding only the manifests,
// so that what a run's memory shows is the collector's. It only walks, as object
// stores do: scan it with storage.WithWalk(true).
type Synthetic struct {
	n         int
	manifests map[digest.Digest][]byte
	byPrefix  [256][]digest.Digest // manifest digests by first byte
	repos     []synthRepo
	mtime     time.Time
}

type synthRepo struct {
	name      string
	manifests []digest.Digest
	layers    []digest.Digest
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
// each referencing layers virtual blobs; about half the blobs stay unreferenced.
func NewSynthetic(n, repos, perRepo, layers int) *Synthetic {
	s := &Synthetic{n: n, manifests: map[digest.Digest][]byte{}, mtime: time.Now().Add(-48 * time.Hour)}
	next := 0
	for r := 0; r < repos; r++ {
		sr := synthRepo{name: fmt.Sprintf("synthetic/repo%d", r)}
		for m := 0; m < perRepo; m++ {
			man := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
			for l := 0; l <= layers; l++ {
				d := synthBlob(next % max(1, n/2))
				next += 7919 // a prime stride: layers spread, some shared
				desc := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: 1 << 20}
				if l == 0 {
					desc.MediaType = v1.MediaTypeImageConfig
					man.Config = desc
				} else {
					man.Layers = append(man.Layers, desc)
				}
				sr.layers = append(sr.layers, d)
			}
			b, _ := json.Marshal(man)
			d := digest.FromBytes(b)
			s.manifests[d] = b
			hx := d.Encoded()
			var p byte
			fmt.Sscanf(hx[:2], "%02x", &p)
			s.byPrefix[p] = append(s.byPrefix[p], d)
			sr.manifests = append(sr.manifests, d)
		}
		slices.Sort(sr.layers)
		sr.layers = slices.Compact(sr.layers)
		s.repos = append(s.repos, sr)
	}
	return s
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
func (s *Synthetic) Walk(_ context.Context, p string, f driver.WalkFn, _ ...func(*driver.WalkOptions)) error {
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
		for _, d := range s.byPrefix[b] {
			if err := f(s.file(fmt.Sprintf("%s/%s/data", p, d.Encoded()), int64(len(s.manifests[d])))); err != nil {
				return err
			}
		}
		return nil
	}
	if p != synthRoot+"/repositories/synthetic" {
		return driver.PathNotFoundError{Path: p}
	}
	for _, r := range s.repos {
		base := path.Join(synthRoot, "repositories", r.name)
		if err := f(s.dir(base + "/_manifests")); err != nil {
			return err
		}
		for i, d := range r.manifests {
			if err := f(s.file(base+"/_manifests/revisions/sha256/"+d.Encoded()+"/link", 71)); err != nil {
				return err
			}
			if i%2 == 0 { // half the manifests tagged
				if err := f(s.file(fmt.Sprintf("%s/_manifests/tags/t%d/current/link", base, i), 71)); err != nil {
					return err
				}
			}
		}
		for _, d := range r.layers {
			if err := f(s.file(base+"/_layers/sha256/"+d.Encoded()+"/link", 71)); err != nil {
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
			if b, ok := s.manifests[digest.NewDigestFromEncoded(digest.SHA256, parts[1])]; ok {
				return b, nil
			}
		}
	}
	if strings.HasSuffix(p, "/current/link") {
		for _, r := range s.repos {
			if strings.HasPrefix(p, path.Join(synthRoot, "repositories", r.name)+"/") {
				var i int
				fmt.Sscanf(path.Base(path.Dir(path.Dir(p))), "t%d", &i)
				return []byte(r.manifests[i]), nil
			}
		}
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
