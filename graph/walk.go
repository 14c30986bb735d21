package graph

import "fmt"

// Kinds of references a walk follows beyond those a manifest states (never stored).
const (
	// EdgeMentions: a digest written in a manifest that cannot be read; it might
	// be a reference.
	EdgeMentions EdgeKind = 'M'
	// EdgeMaybeIndexed: a revision of a repository that links a manifest that is
	// missing or cannot be read, which might be an index of it.
	EdgeMaybeIndexed EdgeKind = 'I'
	// EdgeReferrer: from a subject to a manifest that refers to it (a signature,
	// an SBOM), when a walk follows referrers.
	EdgeReferrer EdgeKind = 'R'
)

// WalkOptions say what differs between walks.
type WalkOptions struct {
	// Referrers follows from each manifest to the manifests whose subject it is:
	// under delete-untagged, referrers of a live manifest are live.
	Referrers bool
}

// Visit is called for each root (parent 0, kind 0) and for each reference out of a
// manifest the walk expands. A subject is visited (kind EdgeSubject) but not
// expanded: a referrer does not keep its subject. Each manifest is expanded once per
// walk; an id reached twice is visited twice.
type Visit func(id, parent uint32, kind EdgeKind)

// walkSource is what a walk reads: the index loaded (Graph), or being built.
type walkSource interface {
	// manifest returns what reading manifest id gave; false for an id that is no
	// manifest (a blob).
	manifest(id uint32) (Manifest, bool)
	edges(id uint32) ([]Edge, error)
	referrersOf(id uint32) []uint32
	// revisionsNear returns the revisions of the repositories that link id.
	revisionsNear(id uint32) []uint32
}

// walker walks from roots by the one rule every part of regsweep shares, the rule
// that decides what is live: children are expanded, config and layers visited,
// subjects visited and not expanded, referrers followed when asked. A manifest that
// is missing, or cannot be read, might reference anything it mentions and might be
// an index of any manifest its repositories link: those are visited and expanded,
// and the walk reports it as blocked.
type walker struct {
	src      walkSource
	o        WalkOptions
	expanded Bitset
	touched  []uint32 // what to clear before the next walk
	stack    []uint32
}

func newWalker(src walkSource, maxID uint32, o WalkOptions) *walker {
	return &walker{src: src, o: o, expanded: NewBitset(maxID)}
}

// walk walks from roots and returns the missing or unreadable manifests it expanded.
func (w *walker) walk(roots []uint32, visit Visit) ([]uint32, error) {
	for _, id := range w.touched {
		w.expanded.Clear(id)
	}
	w.touched = w.touched[:0]
	var blocked []uint32
	w.stack = append(w.stack[:0], roots...)
	for _, r := range roots {
		visit(r, 0, 0)
	}
	push := func(id, parent uint32, kind EdgeKind) {
		visit(id, parent, kind)
		w.stack = append(w.stack, id)
	}
	for len(w.stack) > 0 {
		id := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		if w.expanded.Set(id) {
			continue
		}
		w.touched = append(w.touched, id)
		man, ok := w.src.manifest(id)
		if !ok {
			continue // a blob
		}
		if man.Missing || man.Unreadable != "" {
			blocked = append(blocked, id)
			for _, m := range man.Mentions {
				if _, isManifest := w.src.manifest(m); isManifest {
					push(m, id, EdgeMentions)
				} else {
					visit(m, id, EdgeMentions)
				}
			}
			for _, r := range w.src.revisionsNear(id) {
				if r != id {
					push(r, id, EdgeMaybeIndexed)
				}
			}
		} else {
			edges, err := w.src.edges(id)
			if err != nil {
				return blocked, fmt.Errorf("read references of manifest %d: %w", id, err)
			}
			for _, e := range edges {
				switch e.Kind {
				case EdgeChild:
					push(e.To, id, EdgeChild)
				default:
					visit(e.To, id, e.Kind)
				}
			}
		}
		if w.o.Referrers {
			for _, r := range w.src.referrersOf(id) {
				push(r, id, EdgeReferrer)
			}
		}
	}
	return blocked, nil
}

// Walker walks a Graph, again and again: its marks are cleared between walks by
// what the last one touched, not by a pass over every id.
type Walker struct{ w *walker }

// NewWalker returns a walker over g.
func (g *Graph) NewWalker(o WalkOptions) *Walker { return &Walker{newWalker(g, g.maxID, o)} }

// Walk walks from roots, calling visit, and returns the manifests it expanded that
// are missing or cannot be read (what blocks a sweep).
func (w *Walker) Walk(roots []uint32, visit Visit) ([]uint32, error) { return w.w.walk(roots, visit) }

// Expanded calls fn for every id the last walk expanded: its roots and every
// manifest it went through.
func (w *Walker) Expanded(fn func(id uint32)) {
	for _, id := range w.w.touched {
		fn(id)
	}
}
