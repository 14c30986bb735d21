package analysis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// ErrNoSuchReference is wrapped when a repository, tag or digest is not in the index.
var ErrNoSuchReference = errors.New("no such reference")

// Inspection is what one manifest is, as stored: what a DELETE by digest must use,
// what else that delete removes, and what a GC would do.
type Inspection struct {
	Repository string `json:"repository"`
	// Reference is what was asked: a tag, or a digest.
	Reference    string        `json:"reference"`
	Digest       digest.Digest `json:"digest"`
	MediaType    string        `json:"media_type"`
	ArtifactType string        `json:"artifact_type,omitempty"`
	Size         int64         `json:"size"`
	// PushedAt is the time of the tag's current link, or for a digest of its
	// revision link.
	PushedAt time.Time `json:"pushed_at,omitzero"`
	// Tags are every tag of the repository naming Digest: deleting the digest
	// (DELETE /v2/<repository>/manifests/<digest>) removes them all.
	Tags []string `json:"tags"`
	// OtherRepositories link the same manifest: a delete here leaves it there.
	OtherRepositories []string    `json:"other_repositories,omitempty"`
	Platforms         []Platform  `json:"platforms,omitempty"`
	Referrers         []Referrer  `json:"referrers,omitempty"`
	Bytes             ImageBytes  `json:"bytes"`
	GC                []GCVerdict `json:"gc"`
	Missing           []string    `json:"missing,omitempty"` // digests the image needs that are not stored
	Unreadable        string      `json:"unreadable,omitempty"`
}

// Platform is one child of an index.
type Platform struct {
	Platform  string        `json:"platform"` // os/architecture[/variant], "" when the index gives none
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"media_type"`
	Bytes     int64         `json:"bytes"` // of the child's own closure
}

// Referrer is a manifest whose subject is the inspected one (a signature, an SBOM).
type Referrer struct {
	Digest       digest.Digest `json:"digest"`
	MediaType    string        `json:"media_type"`
	ArtifactType string        `json:"artifact_type,omitempty"`
	Size         int64         `json:"size"`
	Repositories []string      `json:"repositories"`
}

// ImageBytes are the sizes of the distinct stored blobs the manifest reaches (itself,
// children, configs, layers; not its referrers). Unique are those no other tag's image
// reaches: what deleting this digest here and running gc -m frees (in default mode the
// children's and other untagged revisions keep theirs). Shared stay, for other tags.
type ImageBytes struct {
	Total       int64 `json:"total"`
	Blobs       int   `json:"blobs"`
	Unique      int64 `json:"unique"`
	UniqueBlobs int   `json:"unique_blobs"`
	Shared      int64 `json:"shared"`
}

// GCVerdict says what a GC in one mode would do to the manifest's revision link here.
type GCVerdict struct {
	Mode string `json:"mode"` // default or delete-untagged
	Kept bool   `json:"kept"`
	Why  string `json:"why"`
}

// Inspect describes repo's manifest ref (a tag, or a digest) from the graph both
// plans were made from: def in default mode, untagged with delete-untagged.
func Inspect(ctx context.Context, def, untagged *gc.Plan, repo, ref string) (*Inspection, error) {
	g := def.Graph()
	in := &Inspection{Repository: repo, Reference: ref}
	var id uint32
	if d, err := digest.Parse(ref); err == nil {
		for _, r := range g.RevisionsOf(repo) {
			if rd, err := g.Digest(r); err == nil && rd == d {
				id = r
			}
		}
		if id == 0 {
			return nil, fmt.Errorf("%w: %s has no revision link for %s", ErrNoSuchReference, repo, d)
		}
		for _, l := range g.Revisions() {
			if l.Repo == repo && l.ID == id {
				in.PushedAt = l.ModTime
			}
		}
	} else {
		for _, t := range g.Tags() {
			if t.Repo == repo && t.Name == ref {
				if t.ID == 0 || t.Bad != "" {
					return nil, fmt.Errorf("tag %s of %s: its current link is unreadable (%s)", ref, repo, t.Bad)
				}
				id, in.PushedAt = t.ID, t.ModTime
			}
		}
		if id == 0 {
			return nil, fmt.Errorf("%w: %s has no tag %q", ErrNoSuchReference, repo, ref)
		}
	}
	var err error
	if in.Digest, err = g.Digest(id); err != nil {
		return nil, err
	}
	man, _ := g.Manifest(id)
	in.MediaType, in.ArtifactType, in.Size, in.Unreadable = man.MediaType, man.ArtifactType, g.Size(id), man.Unreadable
	if man.Missing {
		in.Missing = append(in.Missing, in.Digest.String())
	}
	for _, t := range g.Tags() {
		if t.Repo == repo && t.ID == id {
			in.Tags = append(in.Tags, t.Name)
		}
	}
	slices.Sort(in.Tags)
	for _, r := range g.LinkedBy(id) {
		if r != repo {
			in.OtherRepositories = append(in.OtherRepositories, r)
		}
	}
	slices.Sort(in.OtherRepositories)

	// The image's closure, and per child its own.
	w := g.NewWalker(graph.WalkOptions{})
	closure := func(root uint32) (map[uint32]bool, error) {
		c := map[uint32]bool{}
		_, err := w.Walk([]uint32{root}, func(x, _ uint32, kind graph.EdgeKind) {
			switch kind {
			case graph.EdgeSubject, graph.EdgeMentions, graph.EdgeMaybeIndexed:
				return
			}
			c[x] = true
		})
		return c, err
	}
	img, err := closure(id)
	if err != nil {
		return nil, err
	}
	for x := range img {
		if g.Present(x) {
			in.Bytes.Total += g.Size(x)
			in.Bytes.Blobs++
		} else if x != id {
			d, _ := g.Digest(x)
			in.Missing = append(in.Missing, d.String())
		}
	}
	slices.Sort(in.Missing)
	rec, _, err := g.ManifestRecord(id)
	if err != nil {
		return nil, err
	}
	platformOf := map[uint32]string{}
	for _, p := range rec.Platforms {
		platformOf[p.ID] = p.Platform
	}
	edges, err := g.Edges(id)
	if err != nil {
		return nil, err
	}
	for _, e := range edges {
		if e.Kind != graph.EdgeChild {
			continue
		}
		cd, err := g.Digest(e.To)
		if err != nil {
			return nil, err
		}
		cm, _ := g.Manifest(e.To)
		c, err := closure(e.To)
		if err != nil {
			return nil, err
		}
		var b int64
		for x := range c {
			b += g.Size(x)
		}
		in.Platforms = append(in.Platforms, Platform{Platform: platformOf[e.To], Digest: cd, MediaType: cm.MediaType, Bytes: b})
	}
	for _, r := range g.Referrers(id) {
		rd, err := g.Digest(r)
		if err != nil {
			return nil, err
		}
		rm, _ := g.Manifest(r)
		in.Referrers = append(in.Referrers, Referrer{Digest: rd, MediaType: rm.MediaType, ArtifactType: rm.ArtifactType, Size: g.Size(r), Repositories: slices.Sorted(slices.Values(g.LinkedBy(r)))})
	}
	slices.SortFunc(in.Referrers, func(a, b Referrer) int { return strings.Compare(string(a.Digest), string(b.Digest)) })

	// Unique: what no other tag's image reaches (referrers of live images
	// followed), once this digest and the tags naming it here are gone: what
	// regsweep gc -m then frees.
	var roots []uint32
	for _, t := range g.Tags() {
		if t.ID != 0 && t.Bad == "" && !(t.Repo == repo && t.ID == id) {
			roots = append(roots, t.ID)
		}
	}
	others := graph.NewBitset(g.MaxID())
	if _, err := g.NewWalker(graph.WalkOptions{Referrers: true}).Walk(roots, func(x, _ uint32, kind graph.EdgeKind) {
		if kind != graph.EdgeSubject {
			others.Set(x)
		}
	}); err != nil {
		return nil, err
	}
	for x := range img {
		if g.Present(x) && !others.Has(x) {
			in.Bytes.Unique += g.Size(x)
			in.Bytes.UniqueBlobs++
		}
	}
	in.Bytes.Shared = in.Bytes.Total - in.Bytes.Unique

	in.GC = []GCVerdict{verdict("default", def, repo, id, in), verdict("delete-untagged", untagged, repo, id, in)}
	return in, ctx.Err()
}

// verdict says whether p deletes repo's revision link of id, and why not.
func verdict(mode string, p *gc.Plan, repo string, id uint32, in *Inspection) GCVerdict {
	v := GCVerdict{Mode: mode}
	path, _ := storage.Path(storage.Spec{Kind: storage.RevisionDir, Repo: repo, Digest: in.Digest})
	for _, m := range p.Manifests {
		if m.Path == path {
			v.Why = "deleted: no tag names it, and no live index or live subject reaches it"
			return v
		}
	}
	v.Kept = true
	switch {
	case !p.Mode.DeleteUntagged:
		v.Why = "kept: every manifest revision is a root"
	case len(in.Tags) > 0:
		v.Why = "kept: tagged " + strings.Join(in.Tags, ", ")
	case p.LiveManifest(id):
		v.Why = "kept: a live index references it, or it refers to a live image (a signature, an SBOM)"
	default:
		v.Why = "kept"
		for _, k := range p.Kept {
			if k.Kind == "manifest" && k.Repository == repo && k.Digest == in.Digest {
				v.Why = "kept: " + k.Reason
			}
		}
	}
	return v
}

// RepoRef is a reference within one repository: a tag or a digest.
type RepoRef struct{ Repository, Reference string }

// FindRefs lists, in repository order, the repositories m matches that hold ref: a
// digest (a revision link names it) or a tag name.
func FindRefs(g *graph.Graph, ref string, m *RepoMatcher) []RepoRef {
	seen := map[string]bool{}
	if d, err := digest.Parse(ref); err == nil {
		for _, l := range g.Revisions() {
			if seen[l.Repo] || !m.Match(l.Repo) {
				continue
			}
			if ld, err := g.Digest(l.ID); err == nil && ld == d {
				seen[l.Repo] = true
			}
		}
	} else {
		for _, t := range g.Tags() {
			if t.Name == ref && m.Match(t.Repo) {
				seen[t.Repo] = true
			}
		}
	}
	var out []RepoRef
	for _, r := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, RepoRef{r, ref})
	}
	return out
}
