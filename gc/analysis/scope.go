package analysis

import (
	"fmt"
	"slices"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
)

// RepoMatcher says whether a repository name is in scope: it matches one of the
// globs (doublestar syntax, as in retention policies: "team/*", "**/cache").
type RepoMatcher struct{ globs []string }

// NewRepoMatcher checks the globs; none means every repository.
func NewRepoMatcher(globs []string) (*RepoMatcher, error) {
	for _, g := range globs {
		if g == "" || !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("repository glob %q is not a valid pattern", g)
		}
	}
	return &RepoMatcher{globs: slices.Clone(globs)}, nil
}

// All reports whether the matcher lets every repository through.
func (m *RepoMatcher) All() bool { return m == nil || len(m.globs) == 0 }

// Globs returns the patterns.
func (m *RepoMatcher) Globs() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.globs)
}

// Match reports whether repo is in scope.
func (m *RepoMatcher) Match(repo string) bool {
	if m.All() {
		return true
	}
	for _, g := range m.globs {
		if ok, _ := doublestar.Match(g, repo); ok {
			return true
		}
	}
	return false
}

// Scope is a report narrowed to some repositories. Marking is never narrowed: every
// repository's roots keep what they reach, and a sweep still frees blobs
// registry-wide. The scope only says which part of the plan the repositories account
// for.
type Scope struct {
	Globs        []string `json:"globs"`
	Repositories int      `json:"repositories"`
	Tags         int      `json:"tags"`
	Manifests    int      `json:"manifests"`
	// Bytes are the distinct live blobs the repositories reach; UniqueBytes those no
	// repository outside the scope reaches.
	Bytes       int64 `json:"bytes"`
	UniqueBytes int64 `json:"unique_bytes"`
	// DeleteBlobs are the garbage blobs only repositories in scope link; the
	// report's delete.blobs lists them and SharedDeleteBlobs, those repositories in
	// and out of scope link. UnlinkedDeleteBlobs no repository links at all (left
	// by failed pushes or a deleted repository directory): no scope claims them.
	DeleteBlobs             int   `json:"delete_blobs"`
	DeleteBytes             int64 `json:"delete_bytes"`
	SharedDeleteBlobs       int   `json:"shared_delete_blobs"`
	SharedDeleteBytes       int64 `json:"shared_delete_bytes"`
	UnlinkedDeleteBlobs     int   `json:"unlinked_delete_blobs"`
	UnlinkedDeleteBytes     int64 `json:"unlinked_delete_bytes"`
	DeleteManifests         int   `json:"delete_manifests"`
	DeleteLayerLinks        int   `json:"delete_layer_links"`
	DeleteUploads           int   `json:"delete_uploads"`
	DeleteUploadBytes       int64 `json:"delete_upload_bytes"`
	DeleteTags              int   `json:"delete_tags"`
	ReclaimableBytes        int64 `json:"reclaimable_bytes"`
	RepositoriesOutOfScope  int   `json:"repositories_out_of_scope"`
	DeleteBlobsOutOfScope   int   `json:"delete_blobs_out_of_scope"`
	DeleteManifestsOutScope int   `json:"delete_manifests_out_of_scope"`
}

// Narrow returns a copy of r, the report of plan p, whose lists hold only what the
// repositories m matches account for, with r.Scope saying so. The summary stays the
// whole storage's: it is what a sweep does. Warnings without a repository
// (storage-wide) are kept.
func Narrow(r *Report, p *gc.Plan, m *RepoMatcher) (*Report, error) {
	if m.All() {
		return r, nil
	}
	out := *r
	s := &Scope{Globs: m.Globs()}
	in := func(repo string) bool { return m.Match(repo) }

	// Who links each garbage blob: its layer links and revision links in the plan.
	holders := map[digest.Digest][2]bool{} // [in scope, out of scope]
	note := func(d digest.Digest, repo string) {
		h := holders[d]
		if in(repo) {
			h[0] = true
		} else {
			h[1] = true
		}
		holders[d] = h
	}
	for _, l := range r.Delete.LayerLinks {
		note(l.Digest, l.Repository)
	}
	for _, mi := range r.Delete.Manifests {
		note(mi.Digest, mi.Repository)
	}
	out.Delete.Blobs = []gc.BlobItem{}
	for _, b := range r.Delete.Blobs {
		h, ok := holders[b.Digest()]
		switch {
		case !ok:
			s.UnlinkedDeleteBlobs++
			s.UnlinkedDeleteBytes += b.Size()
		case h[0] && !h[1]:
			s.DeleteBlobs++
			s.DeleteBytes += b.Size()
			out.Delete.Blobs = append(out.Delete.Blobs, b)
		case h[0]:
			s.SharedDeleteBlobs++
			s.SharedDeleteBytes += b.Size()
			out.Delete.Blobs = append(out.Delete.Blobs, b)
		default:
			s.DeleteBlobsOutOfScope++
		}
	}
	out.Delete.Tags = filter(r.Delete.Tags, func(t gc.TagItem) bool { return in(t.Repository) })
	out.Delete.Manifests = filter(r.Delete.Manifests, func(x gc.ManifestItem) bool { return in(x.Repository) })
	out.Delete.LayerLinks = filter(r.Delete.LayerLinks, func(x gc.LinkItem) bool { return in(x.Repository) })
	out.Delete.Uploads = filter(r.Delete.Uploads, func(x gc.UploadItem) bool { return in(x.Repository) })
	if r.Delete.Repositories != nil {
		out.Delete.Repositories = filter(r.Delete.Repositories, func(x gc.RepoItem) bool { return in(x.Repository) })
	}
	s.DeleteTags = len(out.Delete.Tags)
	s.DeleteManifests = len(out.Delete.Manifests)
	s.DeleteManifestsOutScope = len(r.Delete.Manifests) - s.DeleteManifests
	s.DeleteLayerLinks = len(out.Delete.LayerLinks)
	s.DeleteUploads = len(out.Delete.Uploads)
	for _, u := range out.Delete.Uploads {
		s.DeleteUploadBytes += u.Size
	}

	out.Repositories = filter(r.Repositories, func(x gc.RepoStats) bool { return in(x.Name) })
	s.Repositories = len(out.Repositories)
	s.RepositoriesOutOfScope = len(r.Repositories) - s.Repositories
	for _, rs := range out.Repositories {
		s.Tags += rs.Tags
		s.Manifests += rs.Manifests
		s.ReclaimableBytes += rs.ReclaimableBytes
	}
	if p != nil && p.Graph() != nil {
		bytes, unique, err := groupBytes(p, 2, func(repo string) (int, bool) {
			if in(repo) {
				return 0, true
			}
			return 1, true
		})
		if err != nil {
			return nil, err
		}
		s.Bytes, s.UniqueBytes = bytes[0], unique[0]
	}
	out.Warnings = filter(r.Warnings, func(w graph.Warning) bool { return w.Repository == "" || in(w.Repository) })
	out.Blocked = filter(r.Blocked, func(w graph.Warning) bool { return w.Repository == "" || in(w.Repository) })
	out.Kept = filter(r.Kept, func(k gc.KeptItem) bool { return k.Repository == "" || in(k.Repository) })
	if r.Retention != nil {
		ret := *r.Retention
		ret.Repositories = filter(r.Retention.Repositories, func(x gc.RepoRetention) bool { return in(x.Name) })
		out.Retention = &ret
	}
	out.Scope = s
	return &out, nil
}

// NarrowCapacity returns a copy of c with the repositories, tags, namespaces (those
// holding a repository in scope; their numbers are the whole namespace's) and
// rankings of the repositories m matches. Sizes, ages and totals stay the storage's.
func NarrowCapacity(c *Capacity, m *RepoMatcher) *Capacity {
	if m.All() || c == nil {
		return c
	}
	out := *c
	out.Repositories = filter(c.Repositories, func(x RepoCapacity) bool { return m.Match(x.Name) })
	out.Tags = filter(c.Tags, func(x TagInfo) bool { return m.Match(x.Repository) })
	ns := map[string]bool{}
	for _, r := range out.Repositories {
		ns[namespaceOf(r.Name)] = true
	}
	out.Namespaces = filter(c.Namespaces, func(x NamespaceCapacity) bool { return ns[x.Name] })
	top := func(l []RepoBytes) []RepoBytes { return filter(l, func(x RepoBytes) bool { return m.Match(x.Name) }) }
	out.Top = TopRepositories{ByBytes: top(c.Top.ByBytes), ByUniqueBytes: top(c.Top.ByUniqueBytes), ByReclaimableBytes: top(c.Top.ByReclaimableBytes)}
	return &out
}

func filter[T any](s []T, keep func(T) bool) []T {
	out := []T{}
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
