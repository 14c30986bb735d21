package gc

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/regsweep/regsweep/graph"
)

// stats fills Summary and Repositories: per repository, the distinct blobs its live
// manifests reach (manifests included), which of them no other repository reaches,
// and the bytes this plan deletes that it links.
func (p *Plan) stats(s *state, m *marks, deleted bitset) error {
	sum := &p.Summary
	sum.Tags = len(s.tags)
	for _, man := range s.manifests {
		switch {
		case man.Unreadable != "":
			sum.UnreadableManifests++
		case !man.Missing:
			sum.Manifests++
		}
	}
	for id := uint32(1); id <= s.maxID; id++ {
		if s.present.has(id) {
			sum.Blobs++
			sum.BlobBytes += s.sizes.of(id)
		}
	}
	sum.DeleteBlobs = len(p.Blobs)
	for _, b := range p.Blobs {
		sum.DeleteBytes += b.Size
	}
	sum.DeleteManifests = len(p.Manifests)
	sum.DeleteLayerLinks = len(p.LayerLinks)
	sum.DeleteUploads = len(p.Uploads)

	// One slot per repository directory that has _manifests, in name order.
	var names []string
	slot := map[string]int{}
	for _, r := range s.repos {
		if r.HasManifests {
			slot[r.Name] = len(names)
			names = append(names, r.Name)
		}
	}
	sum.Repositories = len(names)
	rs := make([]RepoStats, len(names))
	for i, n := range names {
		rs[i].Name = n
	}
	for _, t := range s.tags {
		if i, ok := slot[t.Repo]; ok {
			rs[i].Tags++
		}
	}
	roots := make([][]uint32, len(names))
	for _, l := range s.revisions {
		i, ok := slot[l.Repo]
		if !ok {
			continue
		}
		rs[i].Manifests++
		if m.liveManifest.has(l.ID) {
			roots[i] = append(roots[i], l.ID)
		}
	}

	// Two walks per repository instead of holding what each reaches: the first marks
	// what one repository reaches (once) and what several do (many), the second sums
	// bytes. Two bitsets cost 2 bits a blob; reach lists cost 4 bytes per blob per
	// repository.
	once, many := newBitset(s.maxID), newBitset(s.maxID)
	seen := newBitset(s.maxID) // reused: cleared through the ids each walk visited
	var ids []uint32
	for i := range names {
		var err error
		if ids, err = s.reach(roots[i], seen, ids[:0]); err != nil {
			return err
		}
		for _, id := range ids {
			if once.set(id) {
				many.set(id)
			}
		}
	}
	for i := range names {
		var err error
		if ids, err = s.reach(roots[i], seen, ids[:0]); err != nil {
			return err
		}
		for _, id := range ids {
			if !s.present.has(id) {
				continue
			}
			rs[i].Bytes += s.sizes.of(id)
			if !many.has(id) {
				rs[i].UniqueBytes += s.sizes.of(id)
			}
		}
		rs[i].SharedBytes = rs[i].Bytes - rs[i].UniqueBytes
	}
	// Reclaimable: deleted blobs the repository links, each counted once per repository.
	counted := map[[2]uint32]bool{}
	addLinked := func(repo string, id uint32) {
		i, ok := slot[repo]
		if !ok || !deleted.has(id) || counted[[2]uint32{uint32(i), id}] {
			return
		}
		counted[[2]uint32{uint32(i), id}] = true
		rs[i].ReclaimableBytes += s.sizes.of(id)
	}
	for _, l := range s.revisions {
		addLinked(l.Repo, l.ID)
	}
	if err := s.eachLayer(func(l graph.Link) error { addLinked(l.Repo, l.ID); return nil }); err != nil {
		return fmt.Errorf("read layer links: %w", err)
	}
	slices.SortFunc(rs, func(a, b RepoStats) int { return cmp.Compare(a.Name, b.Name) })
	p.Repositories = rs
	return nil
}

// reach appends to ids the distinct ids a walk from roots visits: manifests, through
// index children, and the blobs they reference (what an unreadable one mentions).
// seen is clear on return.
func (s *state) reach(roots []uint32, seen bitset, ids []uint32) ([]uint32, error) {
	defer func() {
		for _, id := range ids {
			seen[id/64] = 0
		}
	}()
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen.set(id) {
			continue
		}
		ids = append(ids, id)
		man, ok := s.manifests[id]
		if !ok || man.Missing {
			continue
		}
		if man.Unreadable != "" {
			// What it mentions is walked like a child: a mentioned manifest's own
			// references count too, whichever the walk meets first.
			stack = append(stack, man.Mentions...)
			continue
		}
		edges, err := s.edgesOf(id)
		if err != nil {
			return ids, fmt.Errorf("read references of manifest %d: %w", id, err)
		}
		for _, e := range edges {
			switch e.Kind {
			case graph.EdgeSubject:
			case graph.EdgeChild:
				stack = append(stack, e.To)
			default:
				if !seen.set(e.To) {
					ids = append(ids, e.To)
				}
			}
		}
	}
	return ids, nil
}
