package storage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// The v2 layout, as distribution's registry/storage/paths.go draws it:
//
//	/docker/registry/v2
//	├── blobs/<alg>/<first 2 hex>/<hex>/data
//	└── repositories/<name>
//	    ├── _layers/<alg>/<hex>/link
//	    ├── _manifests/revisions/<alg>/<hex>/link
//	    ├── _manifests/tags/<tag>/current/link
//	    ├── _manifests/tags/<tag>/index/<alg>/<hex>/link
//	    └── _uploads/<id>/{data,startedat,hashstates/<alg>/<offset>}
//
// This file alone spells these names; everything else goes through Path and Parse.

// Root is the prefix every registry path has inside a driver.
const Root = "/docker/registry/v2"

const (
	blobsDir  = Root + "/blobs"
	sha256Dir = blobsDir + "/sha256" // the one algorithm registries write
	reposDir  = Root + "/repositories"
)

// ErrBadPath is wrapped by Parse and Path when a path or spec is not part of the layout.
var ErrBadPath = errors.New("not a registry v2 path")

// Kind names one kind of path in the layout.
type Kind int

// The path kinds. Dir kinds name the directory a sweep deletes; the others name files.
const (
	KindUnknown     Kind = iota
	BlobData             // blobs/<alg>/<xx>/<hex>/data
	BlobDir              // blobs/<alg>/<xx>/<hex>
	RevisionLink         // <repo>/_manifests/revisions/<alg>/<hex>/link
	RevisionDir          // <repo>/_manifests/revisions/<alg>/<hex>
	TagCurrentLink       // <repo>/_manifests/tags/<tag>/current/link
	TagIndexLink         // <repo>/_manifests/tags/<tag>/index/<alg>/<hex>/link
	TagIndexDir          // <repo>/_manifests/tags/<tag>/index/<alg>/<hex>
	LayerLink            // <repo>/_layers/<alg>/<hex>/link
	LayerDir             // <repo>/_layers/<alg>/<hex>
	UploadStartedAt      // <repo>/_uploads/<id>/startedat
	UploadData           // <repo>/_uploads/<id>/data
	UploadHashState      // <repo>/_uploads/<id>/hashstates/<alg>/<offset>
	UploadDir            // <repo>/_uploads/<id>
	TagDir               // <repo>/_manifests/tags/<tag>: a tag, its current link and history
	RepoDataDir          // <repo>/_manifests, <repo>/_layers or <repo>/_uploads (Rest names which)
)

// RepoDataDirs are the directories of one repository's own data; nested
// repositories live beside them, never inside.
var RepoDataDirs = []string{"_manifests", "_layers", "_uploads"}

var kindNames = map[Kind]string{
	BlobData: "blob data", BlobDir: "blob", RevisionLink: "revision link", RevisionDir: "revision",
	TagCurrentLink: "tag link", TagIndexLink: "tag index link", TagIndexDir: "tag index entry",
	LayerLink: "layer link", LayerDir: "layer", UploadStartedAt: "upload startedat",
	UploadData: "upload data", UploadHashState: "upload hash state", UploadDir: "upload",
	TagDir: "tag", RepoDataDir: "repository data",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Spec identifies one path of the layout. Only the fields its Kind uses are set.
type Spec struct {
	Kind   Kind
	Repo   string        // repository name, may nest (team/app/api)
	Tag    string        // tag name
	Digest digest.Digest // blob, revision, layer or tag index digest
	Upload string        // upload id
	Rest   string        // hash state "<alg>/<offset>"; for RepoDataDir, _manifests, _layers or _uploads
}

// Path returns the driver path of s.
func Path(s Spec) (string, error) {
	digestErr := ValidDigest(s.Digest)
	needDigest := func() error {
		if digestErr != nil {
			return fmt.Errorf("%v path: digest %q: %w", s.Kind, s.Digest, ErrBadPath)
		}
		return nil
	}
	needRepo := func() error {
		if s.Repo == "" || strings.HasPrefix(s.Repo, "/") || strings.HasSuffix(s.Repo, "/") {
			return fmt.Errorf("%v path: repository %q: %w", s.Kind, s.Repo, ErrBadPath)
		}
		for _, c := range strings.Split(s.Repo, "/") {
			if c == "" || c == "." || c == ".." || strings.HasPrefix(c, "_") {
				return fmt.Errorf("%v path: repository %q: %w", s.Kind, s.Repo, ErrBadPath)
			}
		}
		return nil
	}
	needName := func(what, v string) error {
		if v == "" || strings.Contains(v, "/") || v == "." || v == ".." {
			return fmt.Errorf("%v path: %s %q: %w", s.Kind, what, v, ErrBadPath)
		}
		return nil
	}
	repo := func(parts ...string) string {
		return path.Join(append([]string{reposDir, s.Repo}, parts...)...)
	}
	var alg, hex string
	if digestErr == nil && s.Digest != "" {
		alg, hex = string(s.Digest.Algorithm()), s.Digest.Encoded()
	}
	switch s.Kind {
	case BlobData, BlobDir:
		if err := needDigest(); err != nil {
			return "", err
		}
		p := path.Join(blobsDir, alg, hex[:2], hex)
		if s.Kind == BlobData {
			p += "/data"
		}
		return p, nil
	case RevisionLink, RevisionDir, LayerLink, LayerDir:
		if err := needRepo(); err != nil {
			return "", err
		}
		if err := needDigest(); err != nil {
			return "", err
		}
		var p string
		if s.Kind == RevisionLink || s.Kind == RevisionDir {
			p = repo("_manifests", "revisions", alg, hex)
		} else {
			p = repo("_layers", alg, hex)
		}
		if s.Kind == RevisionLink || s.Kind == LayerLink {
			p += "/link"
		}
		return p, nil
	case TagDir, TagCurrentLink, TagIndexLink, TagIndexDir:
		if err := needRepo(); err != nil {
			return "", err
		}
		if err := needName("tag", s.Tag); err != nil {
			return "", err
		}
		if s.Kind == TagDir {
			return repo("_manifests", "tags", s.Tag), nil
		}
		if s.Kind == TagCurrentLink {
			return repo("_manifests", "tags", s.Tag, "current", "link"), nil
		}
		if err := needDigest(); err != nil {
			return "", err
		}
		p := repo("_manifests", "tags", s.Tag, "index", alg, hex)
		if s.Kind == TagIndexLink {
			p += "/link"
		}
		return p, nil
	case RepoDataDir:
		if err := needRepo(); err != nil {
			return "", err
		}
		if !slices.Contains(RepoDataDirs, s.Rest) {
			return "", fmt.Errorf("%v path: %q is not one of %v: %w", s.Kind, s.Rest, RepoDataDirs, ErrBadPath)
		}
		return repo(s.Rest), nil
	case UploadStartedAt, UploadData, UploadHashState, UploadDir:
		if err := needRepo(); err != nil {
			return "", err
		}
		if err := needName("upload id", s.Upload); err != nil {
			return "", err
		}
		switch s.Kind {
		case UploadStartedAt:
			return repo("_uploads", s.Upload, "startedat"), nil
		case UploadData:
			return repo("_uploads", s.Upload, "data"), nil
		case UploadHashState:
			if !hashStateRE.MatchString(s.Rest) {
				return "", fmt.Errorf("%v path: hash state %q is not <alg>/<offset>: %w", s.Kind, s.Rest, ErrBadPath)
			}
			return repo("_uploads", s.Upload, "hashstates", s.Rest), nil
		}
		return repo("_uploads", s.Upload), nil
	}
	return "", fmt.Errorf("path kind %d: %w", s.Kind, ErrBadPath)
}

// RepoPath returns the directory of repository name.
func RepoPath(name string) (string, error) {
	p, err := Path(Spec{Kind: RepoDataDir, Repo: name, Rest: "_manifests"})
	if err != nil {
		return "", err
	}
	return path.Dir(p), nil
}

// Parse maps a driver path back to its Spec. Paths of the layout that a sweep never
// names (directories such as _manifests/tags or a tag's current) are ErrBadPath.
func Parse(p string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("%s: %s: %w", p, why, ErrBadPath)
	}
	if p != path.Clean(p) {
		return bad("not clean")
	}
	if rest, ok := strings.CutPrefix(p, blobsDir+"/"); ok {
		parts := strings.Split(rest, "/")
		if len(parts) < 3 || len(parts) > 4 {
			return bad("blob path depth")
		}
		d, err := joinDigest(parts[0], parts[2])
		if err != nil {
			return bad(err.Error())
		}
		if parts[1] != parts[2][:2] {
			return bad("blob prefix does not match digest")
		}
		if len(parts) == 3 {
			return Spec{Kind: BlobDir, Digest: d}, nil
		}
		if parts[3] != "data" {
			return bad("blob file is not data")
		}
		return Spec{Kind: BlobData, Digest: d}, nil
	}
	rest, ok := strings.CutPrefix(p, reposDir+"/")
	if !ok {
		return bad("outside " + reposDir)
	}
	parts := strings.Split(rest, "/")
	// The repository name ends at the first component starting with "_":
	// distribution's name grammar never allows one there.
	i := 0
	for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
		i++
	}
	if i == 0 || i == len(parts) {
		return bad("no repository name or no _manifests, _layers or _uploads")
	}
	s := Spec{Repo: strings.Join(parts[:i], "/")}
	tail := parts[i:]
	at := func(n int, want string) bool { return len(tail) > n && tail[n] == want }
	if len(tail) == 1 && slices.Contains(RepoDataDirs, tail[0]) {
		s.Kind, s.Rest = RepoDataDir, tail[0]
		return s, nil
	}
	switch tail[0] {
	case "_manifests":
		switch {
		case at(1, "revisions") && (len(tail) == 4 || len(tail) == 5 && tail[4] == "link"):
			d, err := joinDigest(tail[2], tail[3])
			if err != nil {
				return bad(err.Error())
			}
			s.Digest, s.Kind = d, RevisionDir
			if len(tail) == 5 {
				s.Kind = RevisionLink
			}
			return s, nil
		case at(1, "tags") && len(tail) == 3 && tail[2] != "":
			s.Tag, s.Kind = tail[2], TagDir
			return s, nil
		case at(1, "tags") && len(tail) == 5 && tail[3] == "current" && tail[4] == "link":
			s.Tag, s.Kind = tail[2], TagCurrentLink
			return s, nil
		case at(1, "tags") && at(3, "index") && (len(tail) == 6 || len(tail) == 7 && tail[6] == "link"):
			d, err := joinDigest(tail[4], tail[5])
			if err != nil {
				return bad(err.Error())
			}
			s.Tag, s.Digest, s.Kind = tail[2], d, TagIndexDir
			if len(tail) == 7 {
				s.Kind = TagIndexLink
			}
			return s, nil
		}
	case "_layers":
		if len(tail) == 3 || len(tail) == 4 && tail[3] == "link" {
			d, err := joinDigest(tail[1], tail[2])
			if err != nil {
				return bad(err.Error())
			}
			s.Digest, s.Kind = d, LayerDir
			if len(tail) == 4 {
				s.Kind = LayerLink
			}
			return s, nil
		}
	case "_uploads":
		if len(tail) < 2 || tail[1] == "" {
			break
		}
		s.Upload = tail[1]
		switch {
		case len(tail) == 2:
			s.Kind = UploadDir
		case len(tail) == 3 && tail[2] == "startedat":
			s.Kind = UploadStartedAt
		case len(tail) == 3 && tail[2] == "data":
			s.Kind = UploadData
		case len(tail) == 5 && tail[2] == "hashstates" && hashStateRE.MatchString(tail[3]+"/"+tail[4]):
			s.Kind, s.Rest = UploadHashState, tail[3]+"/"+tail[4]
		default:
			return bad("unknown upload file")
		}
		return s, nil
	}
	return bad("unknown repository path")
}

// hashStateRE is "<alg>/<offset>" under an upload's hashstates.
var hashStateRE = regexp.MustCompile(`^[a-z0-9]+/[0-9]+$`)

func joinDigest(alg, hex string) (digest.Digest, error) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	if err := ValidDigest(d); err != nil {
		return "", err
	}
	return d, nil
}

// ValidDigest is digest.Validate with a fast path for lowercase sha256, nearly every
// digest (go-digest validates with regular expressions).
func ValidDigest(d digest.Digest) error {
	if enc, ok := strings.CutPrefix(string(d), "sha256:"); ok && isLowerHex(enc, 64) {
		return nil
	}
	return d.Validate()
}

// SHA256Bytes returns the 32 bytes of a lowercase sha256 digest, the form every
// digest the layout names has; false for any other.
func SHA256Bytes(d digest.Digest) ([32]byte, bool) {
	var raw [32]byte
	enc, ok := strings.CutPrefix(string(d), "sha256:")
	if !ok || !isLowerHex(enc, 64) {
		return raw, false
	}
	_, err := hex.Decode(raw[:], []byte(enc))
	return raw, err == nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidRepoName reports whether name is a repository name the registry would serve.
func ValidRepoName(name string) error {
	_, err := reference.WithName(name)
	return err
}

// Place says what lies at a path of the layout that is not one of its files: where
// a scan meets a symbolic link it will not follow, the place decides what the link
// may hide.
type Place int

// Places, from the widest.
const (
	// PlaceStore: the layout's top, the blob store or a part of it holding many blobs.
	PlaceStore Place = iota
	// PlaceRepoTree: a repository or namespace directory, Spec.Repo its name.
	PlaceRepoTree
	// PlaceManifests: a repository's _manifests, revisions or tags directory.
	PlaceManifests
	// PlaceLayers: a repository's _layers directory or one of its algorithms.
	PlaceLayers
	// PlaceOne: one blob, revision, layer link or tag; Spec says which
	// (BlobDir, RevisionDir, LayerDir or TagCurrentLink).
	PlaceOne
	// PlaceAside: what no plan depends on: tag history, uploads, unknown names.
	PlaceAside
)

// Locate returns the place of p, a path below Root.
func Locate(p string) (Place, Spec) {
	p = path.Clean(p)
	if rest, ok := strings.CutPrefix(p, blobsDir+"/"); ok {
		if parts := strings.Split(rest, "/"); len(parts) == 3 || len(parts) == 4 {
			if s, err := Parse(path.Join(blobsDir, parts[0], parts[1], parts[2])); err == nil {
				return PlaceOne, s
			}
		}
		return PlaceStore, Spec{}
	}
	rest, ok := strings.CutPrefix(p, reposDir+"/")
	if !ok {
		return PlaceStore, Spec{}
	}
	parts := strings.Split(rest, "/")
	i := 0
	for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
		i++
	}
	s := Spec{Repo: strings.Join(parts[:i], "/")}
	if i == len(parts) {
		return PlaceRepoTree, s
	}
	if i == 0 {
		return PlaceAside, Spec{}
	}
	tail := parts[i:]
	// one parses the first n components of tail: a directory naming one thing.
	one := func(n int, file ...string) (Place, Spec) {
		t, err := Parse(path.Join(append([]string{reposDir, s.Repo}, append(tail[:n:n], file...)...)...))
		if err != nil {
			return PlaceAside, s
		}
		return PlaceOne, t
	}
	switch tail[0] {
	case "_manifests":
		switch {
		case len(tail) == 1, tail[1] == "revisions" && len(tail) <= 3, tail[1] == "tags" && len(tail) == 2:
			return PlaceManifests, s
		case tail[1] == "revisions":
			return one(4)
		case tail[1] == "tags" && (len(tail) == 3 || tail[3] == "current"):
			return one(3, "current", "link")
		}
	case "_layers":
		if len(tail) <= 2 {
			return PlaceLayers, s
		}
		return one(3)
	}
	return PlaceAside, s
}
