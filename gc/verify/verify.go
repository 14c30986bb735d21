// Package verify checks registry storage as fsck checks a filesystem: every root's
// closure (manifest, index children, config, layers, live referrers) is present,
// every link names an existing blob, and, optionally, every blob's content hashes to
// its name. It reads the index a scan built and, for checksums, the storage; it
// deletes nothing.
package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// Problem kinds.
const (
	MissingBlob        = "missing_blob"        // a config or layer a root reaches has no data
	MissingManifest    = "missing_manifest"    // a manifest a root reaches (a tag's, a child) has no data
	UnreadableManifest = "unreadable_manifest" // a manifest a root reaches cannot be parsed
	CorruptBlob        = "corrupt_blob"        // the content does not hash to the blob's name (--checksums)
	CorruptLink        = "corrupt_link"        // a tag, revision or layer link that does not name a digest, or disagrees with its path
	DanglingLink       = "dangling_link"       // a layer link names a blob with no data (no image needs it)
	DanglingTag        = "dangling_tag"        // a tag names a manifest its repository has no revision link for
	ForeignLayer       = "foreign_layer"       // a missing layer the manifest says lives elsewhere (urls): not a problem, listed
	MissingLink        = "missing_link"        // a stored blob or manifest a root needs that its repository does not link
)

// Problem is one thing wrong, where, and which roots it breaks.
type Problem struct {
	Kind       string `json:"kind"`
	Repository string `json:"repository,omitempty"`
	// Tags are the tags of Repository that the problem breaks; Revisions the
	// untagged manifests (default mode) it breaks.
	Tags      []string `json:"tags,omitempty"`
	Revisions []string `json:"revisions,omitempty"`
	Digest    string   `json:"digest,omitempty"`
	Path      string   `json:"path,omitempty"`
	Detail    string   `json:"detail"`
	// Live: live data is missing or corrupt (a pull of Tags fails): exit 6.
	Live bool `json:"live"`

	id uint32 // of the blob, for attribution
}

// Summary counts what was checked.
type Summary struct {
	Repositories int   `json:"repositories"`
	Tags         int   `json:"tags"`
	Roots        int   `json:"roots"`
	Manifests    int   `json:"manifests"`
	Blobs        int   `json:"blobs"`
	Reached      int   `json:"reached"` // blobs and manifests the roots reach
	BlobsHashed  int   `json:"blobs_hashed"`
	BytesHashed  int64 `json:"bytes_hashed"`
	Problems     int   `json:"problems"`
	LiveProblems int   `json:"live_problems"`
}

// Report is what verify found.
type Report struct {
	DeleteUntagged bool      `json:"delete_untagged"`
	Checksums      bool      `json:"checksums"`
	Summary        Summary   `json:"summary"`
	Problems       []Problem `json:"problems"`

	// What the check walked, for Rehash to name the roots a corrupt blob breaks.
	roots    []root
	closures map[uint32]*closure
	reached  graph.Bitset
}

// hole is something a root reaches that is missing or cannot be read.
type hole struct {
	id, parent uint32
	kind       graph.EdgeKind
}

// closure is what one root id reaches.
type closure struct {
	holes     []hole
	blobs     []uint32 // configs and layers: the repository needs a layer link
	manifests []uint32 // index children: it needs a revision link
}

// Clean reports whether no live data is missing or corrupt.
func (r *Report) Clean() bool { return r.Summary.LiveProblems == 0 }

// Options say what counts as a root.
type Options struct {
	// DeleteUntagged: only tags are roots (with the children of live indexes and
	// the referrers of live manifests); otherwise every revision link is one too.
	DeleteUntagged bool
	// KeepReferrers: referrers (signatures, SBOMs) of live manifests are live.
	KeepReferrers bool
	// Read reads a blob's content; when set, a missing layer is looked up in its
	// manifest: one the manifest says lives elsewhere (urls) is not a problem.
	Read func(ctx context.Context, d digest.Digest) ([]byte, error)
}

// root is one root of one repository: a tag, or an untagged revision.
type root struct {
	repo, tag string // tag empty: a revision
	id        uint32
}

// Check walks every root's closure in g and reports what is missing or cannot be
// read, naming the repository and the tags it breaks.
func Check(ctx context.Context, g *graph.Graph, o Options) (*Report, error) {
	r := &Report{DeleteUntagged: o.DeleteUntagged}
	s := &r.Summary
	s.Repositories = len(g.Repos())
	s.Tags = len(g.Tags())
	s.Manifests = len(g.ManifestIDs())
	for _, w := range g.PresentSet() {
		s.Blobs += bits.OnesCount64(w)
	}
	var roots []root
	tagged := map[string]map[uint32]bool{}
	for _, t := range g.Tags() {
		if t.ID == 0 || t.Bad != "" {
			continue // a corrupt link: its warning is a problem below
		}
		roots = append(roots, root{repo: t.Repo, tag: t.Name, id: t.ID})
		if tagged[t.Repo] == nil {
			tagged[t.Repo] = map[uint32]bool{}
		}
		tagged[t.Repo][t.ID] = true
	}
	if !o.DeleteUntagged {
		for _, l := range g.Revisions() {
			if l.Bad == "" && !tagged[l.Repo][l.ID] {
				roots = append(roots, root{repo: l.Repo, id: l.ID})
			}
		}
	}
	s.Roots = len(roots)

	// What each distinct root id reaches, walked once per id (roots of many
	// repositories share images): what is missing or unreadable, and what the
	// repository must link for the registry to serve it.
	closures := map[uint32]*closure{}
	reached := graph.NewBitset(g.MaxID())
	// The image itself: what it needs present and linked in its repository. Then,
	// under delete-untagged, its referrers (signatures, SBOMs): live too, so they
	// must be present, but they may live in another repository, so their links are
	// not asked for here (in default mode every referrer is a root of its own).
	image := g.NewWalker(graph.WalkOptions{})
	withReferrers := g.NewWalker(graph.WalkOptions{Referrers: true})
	followReferrers := o.DeleteUntagged && o.KeepReferrers
	for _, rt := range roots {
		if closures[rt.id] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := &closure{}
		seen := map[uint32]bool{}
		walk := func(w *graph.Walker, links bool) error {
			blocked, err := w.Walk([]uint32{rt.id}, func(id, parent uint32, kind graph.EdgeKind) {
				switch kind {
				case graph.EdgeSubject, graph.EdgeMentions, graph.EdgeMaybeIndexed:
					return // not what the root needs: a guess, or what a referrer points at
				}
				reached.Set(id)
				// A manifest whose directory is listed but whose data cannot be read
				// is as missing as one not listed.
				if man, ok := g.Manifest(id); !g.Present(id) || ok && man.Missing {
					if !seen[id] {
						seen[id] = true
						c.holes = append(c.holes, hole{id, parent, kind})
					}
					return
				}
				if !links {
					return
				}
				switch kind {
				case graph.EdgeConfig, graph.EdgeLayer, graph.EdgeFSLayer:
					c.blobs = append(c.blobs, id)
				case graph.EdgeChild:
					c.manifests = append(c.manifests, id)
				}
			})
			if err != nil {
				return err
			}
			for _, b := range blocked {
				if man, _ := g.Manifest(b); man.Unreadable != "" && g.Present(b) && !seen[b] {
					seen[b] = true
					c.holes = append(c.holes, hole{id: b, kind: unreadable})
				}
			}
			return nil
		}
		if err := walk(image, true); err != nil {
			return nil, err
		}
		if followReferrers {
			if err := walk(withReferrers, false); err != nil {
				return nil, err
			}
		}
		closures[rt.id] = c
	}
	for _, wd := range reached {
		s.Reached += bits.OnesCount64(wd)
	}

	// One problem per repository and missing thing, with the roots it breaks; and
	// the links each repository needs.
	type key struct {
		repo string
		id   uint32
	}
	byKey := map[key]*Problem{}
	var keys []key
	needLayer := map[key][]root{} // present blobs a repository's roots reach
	linked := map[key]bool{}      // its revision links
	for _, l := range g.Revisions() {
		linked[key{l.Repo, l.ID}] = true
	}
	add := func(k key, rt root, make func() (*Problem, error)) error {
		p := byKey[k]
		if p == nil {
			var err error
			if p, err = make(); err != nil {
				return err
			}
			p.Repository = k.repo
			byKey[k] = p
			keys = append(keys, k)
		}
		if rt.tag != "" {
			p.Tags = append(p.Tags, rt.tag)
		} else if d, err := g.Digest(rt.id); err == nil {
			p.Revisions = append(p.Revisions, d.String())
		}
		return nil
	}
	for _, rt := range roots {
		c := closures[rt.id]
		for _, h := range c.holes {
			err := add(key{rt.repo, h.id}, rt, func() (*Problem, error) { return problemFor(ctx, g, o, h.id, h.parent, h.kind) })
			if err != nil {
				return nil, err
			}
		}
		for _, id := range c.blobs {
			k := key{rt.repo, id}
			needLayer[k] = append(needLayer[k], rt)
		}
		for _, id := range c.manifests {
			if k := (key{rt.repo, id}); !linked[k] {
				err := add(k, rt, func() (*Problem, error) { return linkProblem(g, k.repo, id, storage.RevisionLink) })
				if err != nil {
					return nil, err
				}
			}
		}
	}
	err := g.Layers(func(l graph.Link) error {
		delete(needLayer, key{l.Repo, l.ID})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, rts := range needLayer {
		for _, rt := range rts {
			if err := add(k, rt, func() (*Problem, error) { return linkProblem(g, k.repo, k.id, storage.LayerLink) }); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range keys {
		p := byKey[k]
		slices.Sort(p.Tags)
		p.Tags = slices.Compact(p.Tags)
		slices.Sort(p.Revisions)
		p.Revisions = slices.Compact(p.Revisions)
		r.Problems = append(r.Problems, *p)
	}

	// Links: what the scan found wrong with them.
	for _, wn := range g.Warnings() {
		switch wn.Kind {
		case "corrupt_link":
			r.Problems = append(r.Problems, Problem{Kind: CorruptLink, Repository: wn.Repository, Digest: wn.Digest, Path: wn.Path, Detail: wn.Detail, Live: true})
		}
	}
	err = g.Layers(func(l graph.Link) error {
		if l.Bad == "" && !g.Present(l.ID) && !reached.Has(l.ID) {
			d, err := g.Digest(l.ID)
			if err != nil {
				return err
			}
			p, _ := storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: l.Repo, Digest: d})
			r.Problems = append(r.Problems, Problem{Kind: DanglingLink, Repository: l.Repo, Digest: d.String(), Path: p,
				Detail: "layer link names a blob with no data; no root needs it (regsweep gc deletes such links)"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	revs := map[string]map[uint32]bool{}
	for _, l := range g.Revisions() {
		if revs[l.Repo] == nil {
			revs[l.Repo] = map[uint32]bool{}
		}
		revs[l.Repo][l.ID] = true
	}
	for _, t := range g.Tags() {
		if t.ID != 0 && t.Bad == "" && !revs[t.Repo][t.ID] {
			d, _ := g.Digest(t.ID)
			p, _ := storage.Path(storage.Spec{Kind: storage.TagCurrentLink, Repo: t.Repo, Tag: t.Name})
			r.Problems = append(r.Problems, Problem{Kind: DanglingTag, Repository: t.Repo, Tags: []string{t.Name}, Digest: d.String(), Path: p,
				Detail: "the tag names a manifest its repository has no revision link for: the registry cannot serve it", Live: true})
		}
	}
	r.roots, r.closures, r.reached = roots, closures, reached
	r.sort()
	return r, nil
}

// unreadable marks, among a closure's holes, a manifest that is there and cannot
// be parsed.
const unreadable graph.EdgeKind = 'U'

// linkProblem describes a blob (or manifest) a root of repo reaches that repo does
// not link: the registry serves a repository only what it links.
func linkProblem(g *graph.Graph, repo string, id uint32, kind storage.Kind) (*Problem, error) {
	d, err := g.Digest(id)
	if err != nil {
		return nil, err
	}
	p, _ := storage.Path(storage.Spec{Kind: kind, Repo: repo, Digest: d})
	what, fix := "layer link", "push the image again, or mount the blob into the repository"
	if kind == storage.RevisionLink {
		what, fix = "revision link", "push the manifest again"
	}
	return &Problem{Kind: MissingLink, Digest: d.String(), Path: p, Live: true,
		Detail: fmt.Sprintf("the blob is stored but the repository has no %s to it: a pull from this repository fails; %s", what, fix)}, nil
}

// problemFor describes the missing or unreadable id that parent references.
func problemFor(ctx context.Context, g *graph.Graph, o Options, id, parent uint32, kind graph.EdgeKind) (*Problem, error) {
	d, err := g.Digest(id)
	if err != nil {
		return nil, err
	}
	path, _ := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
	p := &Problem{Digest: d.String(), Path: path, Live: true}
	var of string
	if parent != 0 {
		pd, err := g.Digest(parent)
		if err != nil {
			return nil, err
		}
		of = " of manifest " + pd.String()
	}
	switch {
	case kind == unreadable:
		man, _ := g.Manifest(id)
		p.Kind, p.Detail = UnreadableManifest, "the manifest cannot be parsed ("+man.Unreadable+"): a pull fails"
	case kind == 0 || kind == graph.EdgeChild || kind == graph.EdgeReferrer:
		p.Kind = MissingManifest
		switch kind {
		case 0:
			p.Detail = "the manifest the roots name has no data: a pull fails"
		case graph.EdgeChild:
			p.Detail = "child manifest" + of + " has no data: a pull of that platform fails"
		default:
			p.Detail = "referrer" + of + " has no data"
		}
	default:
		p.Kind, p.Detail = MissingBlob, kind.String()+of+" has no data: a pull fails"
		if kind == graph.EdgeLayer && parent != 0 && o.Read != nil {
			ok, err := elsewhere(ctx, g, o, parent, d)
			if err != nil {
				return nil, err
			}
			if ok {
				p.Kind, p.Live = ForeignLayer, false
				p.Detail = "layer" + of + " is not stored here: the manifest gives urls to fetch it from"
			}
		}
	}
	return p, nil
}

// elsewhere reports whether manifest parent describes layer d as stored elsewhere
// (a descriptor with urls: foreign or non-distributable layers).
func elsewhere(ctx context.Context, g *graph.Graph, o Options, parent uint32, d digest.Digest) (bool, error) {
	pd, err := g.Digest(parent)
	if err != nil {
		return false, err
	}
	b, err := o.Read(ctx, pd)
	if err != nil {
		return false, nil // the manifest itself is the problem, or gone: say missing
	}
	var m struct {
		Layers []v1.Descriptor `json:"layers"`
	}
	if json.Unmarshal(b, &m) != nil {
		return false, nil
	}
	for _, l := range m.Layers {
		if l.Digest == d && len(l.URLs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

func (r *Report) sort() {
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		if a.Live != b.Live {
			if a.Live {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Path, b.Path))
	})
	r.Summary.Problems, r.Summary.LiveProblems = len(r.Problems), 0
	for _, p := range r.Problems {
		if p.Live {
			r.Summary.LiveProblems++
		}
	}
}

// Reader returns Options.Read over a driver.
func Reader(drv driver.StorageDriver) func(context.Context, digest.Digest) ([]byte, error) {
	return func(ctx context.Context, d digest.Digest) ([]byte, error) {
		p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
		if err != nil {
			return nil, err
		}
		rc, err := drv.Reader(ctx, p, 0)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, graph.MaxManifestSize+1))
		if err != nil {
			return nil, err
		}
		if len(b) > graph.MaxManifestSize {
			return nil, errors.New("larger than a manifest")
		}
		return b, nil
	}
}

// String names a problem on one line.
func (p Problem) String() string {
	var who []string
	if len(p.Tags) > 0 {
		who = append(who, "tags "+strings.Join(p.Tags, ", "))
	}
	if n := len(p.Revisions); n > 0 {
		who = append(who, fmt.Sprintf("%d untagged manifests", n))
	}
	where := p.Repository
	if len(who) > 0 {
		where += " (" + strings.Join(who, "; ") + ")"
	}
	return fmt.Sprintf("[%s] %s: %s: %s", p.Kind, where, p.Path, p.Detail)
}
