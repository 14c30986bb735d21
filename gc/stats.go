package gc

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/regsweep/regsweep/graph"
)

// stats fills Summary and Repositories: per repository, the distinct blobs its live
// manifests reach by the shared walk (manifests included), which of them no other
// repository reaches, and the bytes this plan deletes that it links.
func (p *Plan) stats(g *graph.Graph, tags []graph.Tag, m *marks, deleted graph.Bitset) error {
	sum := &p.Summary
	sum.Tags = len(tags)
	sum.DeleteTags = len(p.Tags)
	for _, id := range g.ManifestIDs() {
		man, _ := g.Manifest(id)
		switch {
		case man.Unreadable != "":
			sum.UnreadableManifests++
		case !man.Missing:
			sum.Manifests++
		}
	}
	for id := uint32(1); id <= g.MaxID(); id++ {
		if g.Present(id) {
			sum.Blobs++
			sum.BlobBytes += g.Size(id)
		}
	}
	p.countItems()

	// One slot per repository directory that has _manifests, in name order.
	var names []string
	slot := map[string]int{}
	for _, r := range g.Repos() {
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
	for _, t := range tags {
		if i, ok := slot[t.Repo]; ok {
			rs[i].Tags++
		}
	}
	roots := make([][]uint32, len(names))
	for _, l := range g.Revisions() {
		i, ok := slot[l.Repo]
		if !ok {
			continue
		}
		// What the repository keeps: under delete-untagged, the untagged manifests a
		// plan deletes count neither here nor in the bytes.
		if m.liveManifest.Has(l.ID) {
			rs[i].Manifests++
			roots[i] = append(roots[i], l.ID)
		}
	}

	// Two walks per repository instead of holding what each reaches: the first marks
	// what one repository reaches (once) and what several do (many), the second sums
	// bytes. Two bitsets cost 2 bits a blob; reach lists cost 4 bytes per blob per
	// repository. Referrers are not followed: they point at an image, it does not
	// reach them (they count in their own repository, as revisions).
	once, many := graph.NewBitset(g.MaxID()), graph.NewBitset(g.MaxID())
	w := g.NewWalker(graph.WalkOptions{})
	seen := graph.NewBitset(g.MaxID())
	var ids []uint32
	reach := func(roots []uint32) error {
		for _, id := range ids {
			seen.Clear(id)
		}
		ids = ids[:0]
		_, err := w.Walk(roots, func(id, _ uint32, kind graph.EdgeKind) {
			if kind != graph.EdgeSubject && !seen.Set(id) {
				ids = append(ids, id)
			}
		})
		return err
	}
	for i := range names {
		if err := reach(roots[i]); err != nil {
			return err
		}
		for _, id := range ids {
			if once.Set(id) {
				many.Set(id)
			}
		}
	}
	var sizes []int64
	for i := range names {
		if err := reach(roots[i]); err != nil {
			return err
		}
		// Sizes in id order: past the memory limit they are read from disk, in
		// spans rather than a block per id. The set is read in order when that is
		// cheaper than sorting.
		if len(seen) < len(ids)*16 {
			ids = seen.AppendIDs(ids[:0])
		} else {
			slices.Sort(ids)
		}
		sizes = slices.Grow(sizes[:0], len(ids))[:len(ids)]
		if err := g.SizesOf(ids, sizes); err != nil {
			return err
		}
		for k, id := range ids {
			if !g.Present(id) {
				continue
			}
			rs[i].Bytes += sizes[k]
			if !many.Has(id) {
				rs[i].UniqueBytes += sizes[k]
			}
		}
		rs[i].SharedBytes = rs[i].Bytes - rs[i].UniqueBytes
	}
	p.reached, p.shared = once, many
	// Reclaimable: deleted blobs the repository links, each counted once per repository.
	// A repository has one layer link and one revision link a blob at most, so only a
	// blob linked both ways can come twice: the few deleted revisions are remembered,
	// not every deleted link (ten million at 100M blobs).
	byRevision := map[[2]uint32]bool{}
	for _, l := range g.Revisions() {
		if i, ok := slot[l.Repo]; ok && deleted.Has(l.ID) && !byRevision[[2]uint32{uint32(i), l.ID}] {
			byRevision[[2]uint32{uint32(i), l.ID}] = true
			rs[i].ReclaimableBytes += g.Size(l.ID)
		}
	}
	err := g.Layers(func(l graph.Link) error {
		if i, ok := slot[l.Repo]; ok && deleted.Has(l.ID) && !byRevision[[2]uint32{uint32(i), l.ID}] {
			rs[i].ReclaimableBytes += g.Size(l.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read layer links: %w", err)
	}
	slices.SortFunc(rs, func(a, b RepoStats) int { return cmp.Compare(a.Name, b.Name) })
	p.Repositories = rs
	return nil
}
