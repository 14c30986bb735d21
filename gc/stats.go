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

	// owner[id]: 0 nobody, i+1 repository i alone, -1 several.
	owner := make([]int32, s.maxID+1)
	reach := make([][]uint32, len(names))
	seen := newBitset(s.maxID) // reused: cleared through the ids each pass visited
	for i := range names {
		var ids []uint32
		stack := roots[i]
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
				for _, d := range man.Mentions {
					if !seen.set(d) {
						ids = append(ids, d)
					}
				}
				continue
			}
			edges, err := s.edgesOf(id)
			if err != nil {
				return fmt.Errorf("read references of manifest %d: %w", id, err)
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
		reach[i] = slices.Clip(ids)
		for _, id := range ids {
			seen[id/64] = 0
		}
		for _, id := range ids {
			switch owner[id] {
			case 0:
				owner[id] = int32(i + 1)
			case int32(i + 1):
			default:
				owner[id] = -1
			}
		}
	}
	for i := range names {
		for _, id := range reach[i] {
			if !s.present.has(id) {
				continue
			}
			rs[i].Bytes += s.sizes.of(id)
			if owner[id] == int32(i+1) {
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
