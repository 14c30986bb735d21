//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
)

// world is what the test pushed and deleted, and so what the storage must hold: the
// expectations of every garbage collector are computed from it, never read back
// from a collector.
type world struct {
	blobs     map[digest.Digest]*blob
	manifests map[digest.Digest]*manifest
	revisions map[string]map[digest.Digest]*manifest // repo -> manifests it has a revision link for
	tags      map[string]map[string]*manifest        // repo -> tag -> manifest
	deleted   []*manifest                            // deleted through the API
}

func newWorld() *world {
	return &world{blobs: map[digest.Digest]*blob{}, manifests: map[digest.Digest]*manifest{}, revisions: map[string]map[digest.Digest]*manifest{}, tags: map[string]map[string]*manifest{}}
}

// pushed records what `skopeo copy [--all] ... repo:tag` leaves in the registry: a
// revision link for the manifest (and for each child of an index) and the tag.
func (w *world) pushed(repo, tag string, m *manifest) {
	if w.revisions[repo] == nil {
		w.revisions[repo] = map[digest.Digest]*manifest{}
		w.tags[repo] = map[string]*manifest{}
	}
	var link func(m *manifest)
	link = func(m *manifest) {
		w.revisions[repo][m.digest] = m
		w.manifests[m.digest] = m
		for _, c := range m.children {
			link(c)
		}
	}
	link(m)
	w.tags[repo][tag] = m
	m.closure(func(b *blob) { w.blobs[b.digest] = b })
}

// deletedManifest records DELETE /v2/repo/manifests/<digest>: the revision link goes
// and so does every tag of repo that points at it.
func (w *world) deletedManifest(repo string, m *manifest) {
	delete(w.revisions[repo], m.digest)
	for tag, tm := range w.tags[repo] {
		if tm.digest == m.digest {
			delete(w.tags[repo], tag)
		}
	}
	w.deleted = append(w.deleted, m)
}

func (w *world) all() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for d := range w.blobs {
		out[d] = true
	}
	return out
}

// roots are the live roots of a mode: every revision link (default), or every tag
// (delete-untagged).
func (w *world) roots(deleteUntagged bool) []*manifest {
	var out []*manifest
	if deleteUntagged {
		for _, tags := range w.tags {
			for _, m := range tags {
				out = append(out, m)
			}
		}
		return out
	}
	for _, revs := range w.revisions {
		for _, m := range revs {
			out = append(out, m)
		}
	}
	return out
}

// untagged lists the manifests with a revision link in a repository where no tag
// points at them.
func (w *world) untagged() map[string]*manifest {
	out := map[string]*manifest{}
	for repo, revs := range w.revisions {
		for d, m := range revs {
			tagged := false
			for _, tm := range w.tags[repo] {
				tagged = tagged || tm.digest == d
			}
			if !tagged {
				out[repo+"@"+d.String()] = m
			}
		}
	}
	return out
}

// reachable is the closure of roots (subjects are not followed).
func reachable(roots []*manifest) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, m := range roots {
		m.closure(func(b *blob) { out[b.digest] = true })
	}
	return out
}

// live is what regsweep must keep (docs/design.md, "What is live"): the closure of the
// roots, and with -m also every manifest with a revision link that refers (subject)
// to a live manifest, and what those reach, until nothing changes.
func (w *world) live(deleteUntagged bool) map[digest.Digest]bool {
	live := reachable(w.roots(deleteUntagged))
	for changed := deleteUntagged; changed; {
		changed = false
		for _, revs := range w.revisions {
			for _, m := range revs {
				if m.subject != nil && live[m.subject.digest] && !live[m.digest] {
					m.closure(func(b *blob) { live[b.digest] = true })
					changed = true
				}
			}
		}
	}
	return live
}

// expectedGone is the set the issue states: blobs referenced by deleted manifests
// (deleted through the API, and with -m the untagged ones too) minus blobs referenced
// by anything still live (tags, index children, and in default mode every revision).
func (w *world) expectedGone(deleteUntagged bool) map[digest.Digest]bool {
	dead := append([]*manifest{}, w.deleted...)
	if deleteUntagged {
		for _, m := range w.untagged() {
			dead = append(dead, m)
		}
	}
	live := w.live(deleteUntagged)
	out := map[digest.Digest]bool{}
	for d := range reachable(dead) {
		if !live[d] {
			out[d] = true
		}
	}
	return out
}

// dist282 is what docker-registry 2.8.2's garbage-collect marks, from its source
// (registry/storage/garbagecollect.go): per repository, every manifest with a revision
// link (default) or only the tagged ones (-m), each with manifest.References() — for
// an index that is its children's manifests, not what they reference, and never a
// subject. With -m an untagged manifest is "eligible for deletion" and not marked, even
// when a live index names it or it refers to a live image.
func (w *world) dist282(deleteUntagged bool) (blobs map[digest.Digest]bool, manifests map[digest.Digest]bool) {
	marked := map[digest.Digest]bool{}
	for _, m := range w.roots(deleteUntagged) {
		marked[m.digest] = true
		for _, r := range m.refs() {
			marked[r.digest] = true
		}
	}
	blobs = map[digest.Digest]bool{}
	for d := range w.blobs {
		if !marked[d] {
			blobs[d] = true
		}
	}
	manifests = map[digest.Digest]bool{}
	if deleteUntagged {
		for _, m := range w.untagged() {
			manifests[m.digest] = true
		}
	}
	return blobs, manifests
}

// names renders digests with the names of the blobs the test built.
func (w *world) names(ds ...digest.Digest) string {
	var out []string
	for _, d := range ds {
		n := "?"
		if b := w.blobs[d]; b != nil {
			n = b.name
		}
		out = append(out, fmt.Sprintf("%s (%s)", n, d.Encoded()[:12]))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, ", ") + "]"
}

func (w *world) nameSet(s map[digest.Digest]bool) string {
	var ds []digest.Digest
	for d := range s {
		ds = append(ds, d)
	}
	return w.names(ds...)
}
