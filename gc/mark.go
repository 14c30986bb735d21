package gc

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/regsweep/regsweep/graph"
)

// bitset is a mark set over dense ids.
type bitset []uint64

func newBitset(n uint32) bitset { return make(bitset, n/64+1) }

func (s bitset) set(i uint32) bool {
	old := s[i/64]&(1<<(i%64)) != 0
	s[i/64] |= 1 << (i % 64)
	return old
}

func (s bitset) has(i uint32) bool { return int(i/64) < len(s) && s[i/64]&(1<<(i%64)) != 0 }

// state is the part of the index the collector holds in memory: sets and arrays
// over ids, and the link lists, which are as many as the links in storage.
type state struct {
	idx       graph.Reader
	maxID     uint32
	present   bitset
	sizes     sizes
	manifests map[uint32]graph.Manifest
	repos     []graph.Repo
	revisions []graph.Link
	goneRepo  func(string) bool // what-if: repositories treated as deleted
	tags      []graph.Tag
	tagIndex  []graph.TagIndexEntry
	uploads   []graph.Upload
	edges     map[uint32][]graph.Edge // manifest id -> its references
	referrers map[uint32][]uint32     // subject id -> referrer manifest ids
	linkedBy  map[uint32][]string     // manifest id -> repositories with a revision link
	revsOf    map[string][]uint32     // repository -> manifest ids it links
	warnings  []graph.Warning
}

func load(idx graph.Reader) (*state, error) {
	meta, err := idx.Meta()
	if err != nil {
		return nil, err
	}
	s := &state{
		idx: idx, maxID: meta.MaxID,
		present:   newBitset(meta.MaxID),
		sizes:     sizes{small: make([]uint32, meta.MaxID+1)},
		manifests: map[uint32]graph.Manifest{},
		linkedBy:  map[uint32][]string{},
		revsOf:    map[string][]uint32{},
		edges:     map[uint32][]graph.Edge{},
		referrers: map[uint32][]uint32{},
	}
	intern := interned{}.of
	steps := []func() error{
		func() error {
			return idx.BlobSizes(func(b graph.Blob) error {
				s.present.set(b.ID)
				s.sizes.set(b.ID, b.Size)
				return nil
			})
		},
		func() error {
			// Held for every manifest: drop the digest (the index has it) and share
			// the few media types.
			return idx.Manifests(func(m graph.Manifest) error {
				m.Digest = ""
				m.MediaType, m.ArtifactType = intern(m.MediaType), intern(m.ArtifactType)
				s.manifests[m.ID] = m
				return nil
			})
		},
		func() error { return idx.Repos(func(r graph.Repo) error { s.repos = append(s.repos, r); return nil }) },
		func() error {
			if meta.Edges > maxHeldEdges {
				s.edges = nil // read per manifest from the index instead
				return nil
			}
			return idx.AllEdges(func(from uint32, e graph.Edge) error { s.edges[from] = append(s.edges[from], e); return nil })
		},
		func() error {
			return idx.AllReferrers(func(subj, r uint32) error { s.referrers[subj] = append(s.referrers[subj], r); return nil })
		},
		func() error {
			return idx.Revisions(func(l graph.Link) error {
				l.Repo = intern(l.Repo)
				s.revisions = append(s.revisions, l)
				s.linkedBy[l.ID] = append(s.linkedBy[l.ID], l.Repo)
				s.revsOf[l.Repo] = append(s.revsOf[l.Repo], l.ID)
				return nil
			})
		},
		func() error { return idx.Tags(func(t graph.Tag) error { s.tags = append(s.tags, t); return nil }) },
		func() error {
			return idx.TagIndex(func(e graph.TagIndexEntry) error { s.tagIndex = append(s.tagIndex, e); return nil })
		},
		func() error {
			return idx.Uploads(func(u graph.Upload) error { s.uploads = append(s.uploads, u); return nil })
		},
		func() error {
			return idx.Warnings(func(w graph.Warning) error { s.warnings = append(s.warnings, w); return nil })
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
	}
	return s, nil
}

// interned makes repeated names one string each while the state loads.
type interned map[string]string

func (in interned) of(v string) string {
	if w, ok := in[v]; ok {
		return w
	}
	in[v] = v
	return v
}

// without drops what a what-if deletes: tags, and whole repositories.
func (s *state) without(o options) {
	if len(o.withoutTags) == 0 && len(o.withoutRepos) == 0 {
		return
	}
	gone := func(repo string) bool { return o.withoutRepos[repo] }
	s.repos = slices.DeleteFunc(s.repos, func(r graph.Repo) bool { return gone(r.Name) })
	s.tags = slices.DeleteFunc(s.tags, func(t graph.Tag) bool { return gone(t.Repo) || o.withoutTags[t.Repo+":"+t.Name] })
	s.revisions = slices.DeleteFunc(s.revisions, func(l graph.Link) bool { return gone(l.Repo) })
	s.goneRepo = gone
	s.tagIndex = slices.DeleteFunc(s.tagIndex, func(e graph.TagIndexEntry) bool { return gone(e.Repo) })
	s.uploads = slices.DeleteFunc(s.uploads, func(u graph.Upload) bool { return gone(u.Repo) })
	for id, repos := range s.linkedBy {
		s.linkedBy[id] = slices.DeleteFunc(repos, gone)
	}
	for r := range o.withoutRepos {
		delete(s.revsOf, r)
	}
}

// sizes holds blob sizes in 4 bytes each; the rare blob of 4 GiB or more is kept
// apart.
type sizes struct {
	small []uint32
	big   map[uint32]int64
}

func (z *sizes) set(id uint32, n int64) {
	if n >= 0 && n < 1<<32-1 {
		z.small[id] = uint32(n)
		return
	}
	if z.big == nil {
		z.big = map[uint32]int64{}
	}
	z.small[id] = 1<<32 - 1
	z.big[id] = n
}

func (z *sizes) of(id uint32) int64 {
	if n := z.small[id]; n != 1<<32-1 {
		return int64(n)
	}
	return z.big[id]
}

// maxHeldEdges is how many manifest references are held in memory at most (8 bytes
// each, plus the map); beyond it, each manifest's references are read from the index
// (one key per manifest) when the walk reaches it.
var maxHeldEdges = 4 << 20

// edgesOf returns the references out of manifest id.
func (s *state) edgesOf(id uint32) ([]graph.Edge, error) {
	if s.edges != nil {
		return s.edges[id], nil
	}
	var out []graph.Edge
	err := s.idx.Edges(id, func(e graph.Edge) error { out = append(out, e); return nil })
	return out, err
}

// eachLayer streams the layer links from the index: there is one per blob per
// repository, the most numerous thing in a registry, so they are never all held.
func (s *state) eachLayer(fn func(graph.Link) error) error {
	return s.idx.Layers(func(l graph.Link) error {
		if s.goneRepo != nil && s.goneRepo(l.Repo) {
			return nil
		}
		return fn(l)
	})
}

// marks is the outcome of Mark.
type marks struct {
	liveManifest bitset // manifests live by digest, globally
	youngOnly    bitset // live manifests that only grace keeps: reached from young roots alone
	// referrersKept counts manifests live only through the referrer rule.
	referrersKept int
	live          bitset // blobs (manifests included) that must stay
	keptWhy       map[uint32]string
	pinnedRepo    map[string]string // repository -> why nothing in it is deleted
	blocked       []uint32          // unreadable or missing manifests a root reaches
	missing       map[uint32]uint32 // missing blob -> a live manifest referencing it
	danglingTags  []graph.Tag
	// keepAll, when set, says why no blob and no layer link may be deleted: something
	// reached (or a symbolic link) may reference any blob, and which is unknown.
	keepAll string
}

// mark computes what is live, following docs/design.md, "What is live".
func (s *state) mark(o options) (*marks, error) {
	m := &marks{
		liveManifest: newBitset(s.maxID),
		youngOnly:    newBitset(s.maxID),
		live:         newBitset(s.maxID),
		keptWhy:      map[uint32]string{},
		pinnedRepo:   map[string]string{},
		missing:      map[uint32]uint32{},
	}
	cutoff := o.now.Add(-o.grace)
	for _, r := range s.repos {
		if r.Bad != "" {
			m.pinnedRepo[r.Name] = r.Bad
		}
	}
	revision := map[string]map[uint32]bool{}
	for _, l := range s.revisions {
		if revision[l.Repo] == nil {
			revision[l.Repo] = map[uint32]bool{}
		}
		revision[l.Repo][l.ID] = true
	}
	for _, t := range s.tags {
		if t.Bad != "" && o.deleteUntagged {
			// Which manifest the tag names is unknown: keep them all.
			m.pinnedRepo[t.Repo] = "tag " + t.Name + " has an unreadable current link"
		}
		if t.Bad == "" && !revision[t.Repo][t.ID] {
			m.danglingTags = append(m.danglingTags, t)
		}
	}

	var roots, youngRoots []uint32
	for _, l := range s.revisions {
		ids := []uint32{l.ID}
		if l.Target != 0 && l.Target != l.ID {
			ids = append(ids, l.Target)
		}
		young := l.ModTime.After(cutoff)
		_, pinned := m.pinnedRepo[l.Repo]
		switch {
		case !o.deleteUntagged || pinned || l.Bad != "":
			roots = append(roots, ids...)
		case s.manifests[l.ID].Missing:
			// Its blob is lost, or a listing missed it: what it is, and so whether a
			// live image needs it (as a referrer, say), is unknown. A broken root.
			roots = append(roots, ids...)
		case young:
			youngRoots = append(youngRoots, ids...)
		}
	}
	for _, t := range s.tags {
		// A tag keeps what it names even where its repository has no revision link
		// for it (the registry cannot serve it, but a listing may have missed the
		// link): keeping costs nothing, guessing wrong breaks an image.
		if t.Bad == "" && t.ID != 0 && (o.deleteUntagged || !revision[t.Repo][t.ID]) {
			roots = append(roots, t.ID)
		}
	}
	var without *marks
	if o.deleteUntagged && o.keepReferrers {
		// Count what only the referrer rule keeps: what distribution's GC would delete.
		plain := o
		plain.keepReferrers = false
		without = &marks{liveManifest: newBitset(s.maxID), live: newBitset(s.maxID), keptWhy: map[uint32]string{}, missing: map[uint32]uint32{}}
		if err := s.walk(plain, without, slices.Clone(roots)); err != nil {
			return nil, err
		}
	}
	if err := s.walk(o, m, roots); err != nil {
		return nil, err
	}
	if without != nil {
		for i := range m.liveManifest {
			m.referrersKept += bits.OnesCount64(m.liveManifest[i] &^ without.liveManifest[i])
		}
	}
	if len(youngRoots) > 0 {
		// What only young manifests reach is kept by grace, not live on its own.
		before := append(bitset(nil), m.live...)
		beforeM := append(bitset(nil), m.liveManifest...)
		if err := s.walk(o, m, youngRoots); err != nil {
			return nil, err
		}
		for i := range m.liveManifest {
			m.youngOnly[i] = m.liveManifest[i] &^ beforeM[i]
		}
		for i := range m.live {
			for diff := m.live[i] &^ before[i]; diff != 0; diff &= diff - 1 {
				id := uint32(i*64 + bits.TrailingZeros64(diff))
				m.keptWhy[id] = "younger than grace"
			}
		}
	}
	if err := s.failClosed(o, m); err != nil {
		return nil, fmt.Errorf("read layer links: %w", err)
	}
	return m, nil
}

// walk marks everything reachable from roots. Depth-first with an explicit stack:
// indexes nest, and referrers of referrers are common (a signature of an SBOM).
func (s *state) walk(o options, m *marks, stack []uint32) error {
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if m.liveManifest.set(id) {
			continue
		}
		m.live.set(id)
		man, ok := s.manifests[id]
		switch {
		case !ok:
			continue
		case man.Missing || man.Unreadable != "":
			// A broken root, or a manifest that cannot be read: what it references is
			// unknown. The sweep refuses; what it might reference is kept.
			m.blocked = append(m.blocked, id)
			if man.Partial && m.keepAll == "" {
				m.keepAll = "an unreadable manifest that a root reaches could not be read to its end: it might reference any blob"
			}
			for _, d := range man.Mentions {
				m.live.set(d)
				if _, ok := s.manifests[d]; ok {
					stack = append(stack, d) // it might be its child: keep what that references
				}
			}
			// It might be an index of any manifest its repositories link.
			for _, r := range s.linkedBy[id] {
				stack = append(stack, s.revsOf[r]...)
			}
			continue
		}
		edges, err := s.edgesOf(id)
		if err != nil {
			return fmt.Errorf("read references of manifest %d: %w", id, err)
		}
		for _, e := range edges {
			switch e.Kind {
			case graph.EdgeChild:
				stack = append(stack, e.To)
			case graph.EdgeSubject:
				// A referrer never keeps its subject alive.
			default:
				m.live.set(e.To)
				if !s.present.has(e.To) {
					m.missing[e.To] = id
				}
			}
		}
		if o.deleteUntagged && o.keepReferrers {
			stack = append(stack, s.referrers[id]...)
		}
	}
	return nil
}

func (s *state) failClosed(o options, m *marks) error {
	cutoff := o.now.Add(-o.grace)
	for _, w := range s.warnings {
		if w.Blocks && m.keepAll == "" {
			m.keepAll = w.Path + ": " + w.Kind + " hides what may be referenced"
		}
	}
	// Fail closed: an unreadable manifest might reference any blob linked into a
	// repository that links it.
	unreadableRepos := map[string]bool{}
	for _, id := range m.blocked {
		for _, r := range s.linkedBy[id] {
			unreadableRepos[r] = true
		}
	}
	return s.eachLayer(func(l graph.Link) error {
		keep := ""
		switch {
		case m.keepAll != "":
			keep = m.keepAll
		case m.pinnedRepo[l.Repo] != "":
			keep = "in repository " + l.Repo + ": " + m.pinnedRepo[l.Repo]
		case unreadableRepos[l.Repo]:
			keep = "linked in " + l.Repo + ", which links an unreadable manifest"
		case l.Bad != "":
			keep = "its layer link in " + l.Repo + " is corrupt"
		case l.ModTime.After(cutoff):
			keep = "younger than grace"
		}
		if keep == "" {
			return nil
		}
		for _, id := range []uint32{l.ID, l.Target} {
			if id != 0 && !m.live.has(id) && m.keptWhy[id] == "" {
				m.keptWhy[id] = keep
			}
		}
		return nil
	})
}
