package difftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Helpers that look at a registry tree on disk, independently of regsweep's own code.

const v2 = "docker/registry/v2"

// tempDir prefers tmpfs: the filesystem driver fsyncs every write, and on a disk that
// makes populating a registry ~20 times slower.
func tempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "regsweep-difftest-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// fileSet is a set of regular files, as slash paths relative to a registry root.
type fileSet map[string]struct{}

func (s fileSet) has(p string) bool { _, ok := s[p]; return ok }

// minus returns the sorted paths in s and not in o.
func (s fileSet) minus(o fileSet) []string {
	var out []string
	for p := range s {
		if !o.has(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func listFiles(t *testing.T, root string) fileSet {
	t.Helper()
	s := fileSet{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			s[filepath.ToSlash(rel)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return s
}

// snapshot maps every file and directory under root to its kind, size and content hash.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	s := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			s[filepath.ToSlash(rel)] = "dir"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s[filepath.ToSlash(rel)] = fmt.Sprintf("file %d %x", len(b), sha256.Sum256(b))
		default:
			s[filepath.ToSlash(rel)] = "other " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return s
}

// copyTree copies the files under src to dst, with their modification times.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		// Times too: a tag's is its push time, which retention policies rank by.
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// Kinds of registry files.
const (
	fBlobData    = "blob"
	fLayerLink   = "layer-link"
	fRevLink     = "revision-link"
	fTagIndex    = "tag-index"
	fTagCurrent  = "tag-current"
	fUpload      = "upload"
	fUnknownFile = "unknown"
)

// regFile is a file of the v2 layout, parsed from its relative path.
type regFile struct {
	Kind   string
	Repo   string
	Tag    string
	Digest digest.Digest
}

func classify(rel string) regFile {
	unknown := regFile{Kind: fUnknownFile}
	rest, ok := strings.CutPrefix(rel, v2+"/")
	if !ok {
		return unknown
	}
	parts := strings.Split(rest, "/")
	if parts[0] == "blobs" {
		// blobs/<alg>/<xx>/<hex>/data
		if len(parts) == 5 && parts[4] == "data" && strings.HasPrefix(parts[3], parts[2]) {
			if d, err := digest.Parse(parts[1] + ":" + parts[3]); err == nil {
				return regFile{Kind: fBlobData, Digest: d}
			}
		}
		return unknown
	}
	if parts[0] != "repositories" {
		return unknown
	}
	i := slices.IndexFunc(parts, func(s string) bool { return strings.HasPrefix(s, "_") })
	if i < 2 {
		return unknown
	}
	repo := strings.Join(parts[1:i], "/")
	tail := parts[i:]
	parseD := func(alg, hex string) (digest.Digest, bool) {
		d, err := digest.Parse(alg + ":" + hex)
		return d, err == nil
	}
	switch {
	case tail[0] == "_layers" && len(tail) == 4 && tail[3] == "link":
		if d, ok := parseD(tail[1], tail[2]); ok {
			return regFile{Kind: fLayerLink, Repo: repo, Digest: d}
		}
	case tail[0] == "_manifests" && len(tail) == 5 && tail[1] == "revisions" && tail[4] == "link":
		if d, ok := parseD(tail[2], tail[3]); ok {
			return regFile{Kind: fRevLink, Repo: repo, Digest: d}
		}
	case tail[0] == "_manifests" && len(tail) == 7 && tail[1] == "tags" && tail[3] == "index" && tail[6] == "link":
		if d, ok := parseD(tail[4], tail[5]); ok {
			return regFile{Kind: fTagIndex, Repo: repo, Tag: tail[2], Digest: d}
		}
	case tail[0] == "_manifests" && len(tail) == 5 && tail[1] == "tags" && tail[3] == "current" && tail[4] == "link":
		return regFile{Kind: fTagCurrent, Repo: repo, Tag: tail[2]}
	case tail[0] == "_uploads" && len(tail) >= 3:
		return regFile{Kind: fUpload, Repo: repo, Tag: tail[1]}
	}
	return unknown
}

func blobDataPath(d digest.Digest) string {
	return fmt.Sprintf("%s/blobs/%s/%s/%s/data", v2, d.Algorithm(), d.Encoded()[:2], d.Encoded())
}

// manifestInfo is what the test itself reads out of a stored manifest.
type manifestInfo struct {
	MediaType string
	Subject   digest.Digest
	Refs      []digest.Digest // config, layers, index children (not the subject)
}

func readManifest(root string, d digest.Digest) (manifestInfo, error) {
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(blobDataPath(d))))
	if err != nil {
		return manifestInfo{}, err
	}
	var raw struct {
		MediaType string `json:"mediaType"`
		Config    *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
		Subject *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"subject"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return manifestInfo{}, fmt.Errorf("manifest %s: %w", d, err)
	}
	mi := manifestInfo{MediaType: raw.MediaType}
	if raw.Config != nil {
		mi.Refs = append(mi.Refs, raw.Config.Digest)
	}
	for _, l := range raw.Layers {
		mi.Refs = append(mi.Refs, l.Digest)
	}
	for _, m := range raw.Manifests {
		mi.Refs = append(mi.Refs, m.Digest)
	}
	if raw.Subject != nil {
		mi.Subject = raw.Subject.Digest
	}
	return mi, nil
}
