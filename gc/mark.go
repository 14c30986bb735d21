package gc

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/regsweep/regsweep/graph"
)

// marks is the outcome of mark.
type marks struct {
	liveManifest graph.Bitset // manifests live by digest, globally
	youngOnly    graph.Bitset // live manifests that only grace keeps: reached from young roots alone
	// referrersKept counts manifests live only through the referrer rule.
	referrersKept int
	live          graph.Bitset // blobs (manifests included) that must stay
	keptWhy       map[uint32]string
	pinnedRepo    map[string]string // repository -> why nothing in it is deleted
	blocked       []uint32          // unreadable or missing manifests a root reaches
	missing       map[uint32]uint32 // missing blob -> a live manifest referencing it
	danglingTags  []graph.Tag
	// keepAll, when set, says why no blob and no layer link may be deleted: something
	// reached (or a symbolic link) may reference any blob, and which is unknown.
	keepAll string
}

func newMarks(maxID uint32) *marks {
	return &marks{
		liveManifest: graph.NewBitset(maxID),
		youngOnly:    graph.NewBitset(maxID),
		live:         graph.NewBitset(maxID),
		keptWhy:      map[uint32]string{},
		pinnedRepo:   map[string]string{},
		missing:      map[uint32]uint32{},
	}
}

// mark computes what is live, following docs/design.md, "What is live".
func mark(g *graph.Graph, o options) (*marks, error) {
	m := newMarks(g.MaxID())
	cutoff := o.cutoff()
	for _, r := range g.Repos() {
		if r.Bad != "" {
			m.pinnedRepo[r.Name] = r.Bad
		}
	}
	revision := map[string]map[uint32]bool{}
	for _, l := range g.Revisions() {
		if revision[l.Repo] == nil {
			revision[l.Repo] = map[uint32]bool{}
		}
		revision[l.Repo][l.ID] = true
	}
	for _, t := range g.Tags() {
		if t.Bad != "" && o.untagged(t.Repo) {
			// Which manifest the tag names is unknown: keep them all.
			m.pinnedRepo[t.Repo] = "tag " + t.Name + " has an unreadable current link"
		}
		if t.Bad == "" && !revision[t.Repo][t.ID] {
			m.danglingTags = append(m.danglingTags, t)
		}
	}

	var roots, youngRoots []uint32
	for _, l := range g.Revisions() {
		ids := []uint32{l.ID}
		if l.Target != 0 && l.Target != l.ID {
			ids = append(ids, l.Target)
		}
		young := l.ModTime.After(cutoff)
		_, pinned := m.pinnedRepo[l.Repo]
		man, _ := g.Manifest(l.ID)
		switch {
		case !o.untagged(l.Repo) || pinned || l.Bad != "":
			roots = append(roots, ids...)
		case man.Missing:
			// Its blob is lost, or a listing missed it: what it is, and so whether a
			// live image needs it (as a referrer, say), is unknown. A broken root.
			roots = append(roots, ids...)
		case young:
			youngRoots = append(youngRoots, ids...)
		}
	}
	for _, t := range g.Tags() {
		// A tag keeps what it names even where its repository has no revision link
		// for it (the registry cannot serve it, but a listing may have missed the
		// link): keeping costs nothing, guessing wrong breaks an image.
		if t.Bad == "" && t.ID != 0 && (o.untagged(t.Repo) || !revision[t.Repo][t.ID]) {
			roots = append(roots, t.ID)
		}
	}
	referrers := o.anyUntagged() && o.keepReferrers
	if referrers {
		// Count what only the referrer rule keeps: what distribution's GC would delete.
		without := newMarks(g.MaxID())
		if err := walk(g, false, without, roots); err != nil {
			return nil, err
		}
		if err := walk(g, true, m, roots); err != nil {
			return nil, err
		}
		for i := range m.liveManifest {
			m.referrersKept += bits.OnesCount64(m.liveManifest[i] &^ without.liveManifest[i])
		}
	} else if err := walk(g, false, m, roots); err != nil {
		return nil, err
	}
	if len(youngRoots) > 0 {
		// What only young manifests reach is kept by grace, not live on its own.
		before := slices.Clone(m.live)
		beforeM := slices.Clone(m.liveManifest)
		if err := walk(g, referrers, m, youngRoots); err != nil {
			return nil, err
		}
		for i := range m.liveManifest {
			m.youngOnly[i] = m.liveManifest[i] &^ beforeM[i]
		}
		for i := range m.live {
			for diff := m.live[i] &^ before[i]; diff != 0; diff &= diff - 1 {
				id := uint32(i*64 + bits.TrailingZeros64(diff))
				m.keptWhy[id] = ReasonGrace
			}
		}
	}
	if err := failClosed(g, o, m); err != nil {
		return nil, fmt.Errorf("read layer links: %w", err)
	}
	return m, nil
}

// walk marks live everything the shared walk reaches from roots.
func walk(g *graph.Graph, referrers bool, m *marks, roots []uint32) error {
	w := g.NewWalker(graph.WalkOptions{Referrers: referrers})
	blocked, err := w.Walk(roots, func(id, parent uint32, kind graph.EdgeKind) {
		if kind == graph.EdgeSubject {
			return // a referrer never keeps its subject alive
		}
		m.live.Set(id)
		if (kind == graph.EdgeConfig || kind == graph.EdgeLayer || kind == graph.EdgeFSLayer) && !g.Present(id) {
			m.missing[id] = parent
		}
	})
	if err != nil {
		return err
	}
	w.Expanded(func(id uint32) { m.liveManifest.Set(id) })
	for _, id := range blocked {
		if !slices.Contains(m.blocked, id) {
			m.blocked = append(m.blocked, id)
		}
		if man, _ := g.Manifest(id); man.Partial && m.keepAll == "" {
			m.keepAll = ReasonPartial
		}
	}
	return nil
}

func failClosed(g *graph.Graph, o options, m *marks) error {
	cutoff := o.cutoff()
	for _, w := range g.Warnings() {
		if w.Blocks && m.keepAll == "" {
			m.keepAll = w.Path + ": " + w.Kind + " hides what may be referenced"
		}
	}
	// Fail closed: an unreadable manifest might reference any blob linked into a
	// repository that links it.
	unreadableRepos := map[string]bool{}
	for _, id := range m.blocked {
		for _, r := range g.LinkedBy(id) {
			unreadableRepos[r] = true
		}
	}
	return g.Layers(func(l graph.Link) error {
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
			keep = ReasonGrace
		}
		if keep == "" {
			return nil
		}
		for _, id := range []uint32{l.ID, l.Target} {
			if id != 0 && !m.live.Has(id) && m.keptWhy[id] == "" {
				m.keptWhy[id] = keep
			}
		}
		return nil
	})
}
