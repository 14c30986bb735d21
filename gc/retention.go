package gc

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// TagItem is a tag directory to delete: what distribution's tag delete removes (the
// current link and the tag's history). Deleting a tag frees nothing by itself; what
// it named becomes garbage when nothing else keeps it.
type TagItem struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"`
	// PushedAt is the time of the tag's current link when the plan was made. A
	// sweep deletes the tag only if the link still names Digest and is no newer.
	PushedAt time.Time `json:"pushed_at"`
	// Policy names the policy that applies; Reason says why no entry of it keeps
	// the tag.
	Policy string `json:"policy"`
	Reason string `json:"reason"`
	Path   string `json:"path"`
}

// Retention is what the retention policies decided, and what their untagging frees.
type Retention struct {
	File string `json:"file,omitempty"`
	// Freed*: what the plan deletes only because it deletes tags; without the tag
	// deletions it would stay.
	FreedBlobs     int               `json:"freed_blobs"`
	FreedBytes     int64             `json:"freed_bytes"`
	FreedManifests int               `json:"freed_manifests"`
	Policies       []PolicyRetention `json:"policies"`
	// Repositories lists those a policy applies to. A blob that the removed tags of
	// several repositories reach counts in each of them, and once in the totals.
	Repositories []RepoRetention `json:"repositories"`
}

// RetentionCounts are the counts of one policy or repository.
type RetentionCounts struct {
	Tags       int `json:"tags"`
	DeleteTags int `json:"delete_tags"`
	// KeptBySafety counts tags no entry keeps that a safety rule does: grace, an
	// unknown push time, an unreadable link, the last tag of a repository.
	KeptBySafety   int   `json:"kept_by_safety"`
	FreedBlobs     int   `json:"freed_blobs"`
	FreedBytes     int64 `json:"freed_bytes"`
	FreedManifests int   `json:"freed_manifests"`
}

// PolicyRetention is one policy's line.
type PolicyRetention struct {
	Policy         string `json:"policy"`
	Index          int    `json:"index"`
	DeleteUntagged bool   `json:"delete_untagged"`
	Repositories   int    `json:"repositories"`
	RetentionCounts
}

// RepoRetention is one repository's line.
type RepoRetention struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	RetentionCounts
}

// decision is the policy's verdict on one tag of the graph.
type decision struct {
	tag    graph.Tag
	policy int
	policy.Decision
}

// decideTags applies o.policy to the tags of g (what-ifs applied) and returns the
// tags to delete, by "repo:tag", with the plan's items for them and what a safety
// rule or the plan being applied keeps. It sets o.untaggedIn.
func decideTags(g *graph.Graph, o *options) (del map[string]bool, items []TagItem, kept []KeptItem, all []decision, warn *graph.Warning, err error) {
	byRepo := map[string][]graph.Tag{}
	for _, t := range g.Tags() {
		byRepo[t.Repo] = append(byRepo[t.Repo], t)
	}
	o.untaggedIn = map[string]bool{}
	for _, r := range g.Repos() {
		if i := o.policy.Match(r.Name); i >= 0 && o.policy.Policies[i].DeleteUntagged {
			o.untaggedIn[r.Name] = true
		}
	}
	cutoff := o.cutoff()
	del = map[string]bool{}
	unknown, firstUnknown := 0, ""
	repos := make([]string, 0, len(byRepo))
	for r := range byRepo {
		repos = append(repos, r)
	}
	slices.Sort(repos)
	for _, repo := range repos {
		tags := byRepo[repo]
		in := make([]policy.Tag, len(tags))
		for i, t := range tags {
			in[i] = policy.Tag{Name: t.Name, PushedAt: t.ModTime, Unreadable: t.Bad != "" || t.ID == 0}
		}
		pi, ds := o.policy.Decide(repo, in, o.now, o.now.Sub(cutoff))
		if pi < 0 {
			continue
		}
		for _, t := range tags {
			if t.Bad == "" && t.ID != 0 && t.ModTime.IsZero() {
				unknown++
				if firstUnknown == "" {
					firstUnknown, _ = storage.Path(storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: t.Name})
				}
			}
		}
		name := o.policy.PolicyName(pi)
		for i, d := range ds {
			t := tags[i]
			all = append(all, decision{tag: t, policy: pi, Decision: d})
			var dg digest.Digest
			if t.ID != 0 {
				var err error
				if dg, err = g.Digest(t.ID); err != nil {
					return nil, nil, nil, nil, nil, err
				}
			}
			if !d.Delete {
				if d.Safety {
					kept = append(kept, KeptItem{Kind: "tag", Repository: repo, Tag: t.Name, Digest: dg, Reason: d.Rule})
				}
				continue
			}
			path, err := storage.Path(storage.Spec{Kind: storage.TagDir, Repo: repo, Tag: t.Name})
			if err != nil {
				return nil, nil, nil, nil, nil, fmt.Errorf("tag %s in %q: %w", t.Name, repo, err)
			}
			if o.only != nil {
				earlier, ok := o.onlyTags[path]
				switch {
				case !ok:
					kept = append(kept, KeptItem{Kind: "tag", Repository: repo, Tag: t.Name, Digest: dg, Reason: reasonNotPlanned})
					continue
				case earlier.Digest != dg || !t.ModTime.Equal(earlier.PushedAt):
					kept = append(kept, KeptItem{Kind: "tag", Repository: repo, Tag: t.Name, Digest: dg, Reason: reasonRepushed})
					continue
				}
			}
			del[repo+":"+t.Name] = true
			items = append(items, TagItem{Repository: repo, Tag: t.Name, Digest: dg, PushedAt: t.ModTime, Policy: name, Reason: d.Rule, Path: path})
		}
	}
	if unknown > 0 {
		warn = &graph.Warning{Kind: "unknown_push_time", Path: firstUnknown,
			Detail: fmt.Sprintf("%d tags a policy applies to have no push time (their links could not be stated, or the index was built without tag times, as gc without --policy builds it): the policy keeps them; scan again to decide them", unknown)}
	}
	return del, items, kept, all, warn, nil
}

const reasonRepushed = "pushed again since the plan was made"

// retention counts what the policies decided and what the tag deletions free: what
// p deletes (deleted blobs, and revisions in p.Manifests) that the plan without
// them (base) keeps, per policy and per repository by what each one's removed tags
// reach.
func (p *Plan) retention(o options, g *graph.Graph, base *marks, deleted graph.Bitset, ds []decision, revIDs map[string][]uint32) error {
	r := &Retention{File: o.policy.Name}
	freed := graph.NewBitset(g.MaxID())
	for i, w := range deleted {
		if i < len(base.live) {
			freed[i] = w & base.live[i]
		}
	}
	for id, why := range base.keptWhy {
		if why != "" && deleted.Has(id) {
			freed.Set(id)
		}
	}
	freedRev := map[string]map[uint32]bool{} // repository -> manifests untagging frees
	for repo, ids := range revIDs {
		for _, id := range ids {
			if base.liveManifest.Has(id) && !base.youngOnly.Has(id) {
				if freedRev[repo] == nil {
					freedRev[repo] = map[uint32]bool{}
				}
				freedRev[repo][id] = true
				r.FreedManifests++
			}
		}
	}
	for i, w := range freed {
		for ; w != 0; w &= w - 1 {
			id := uint32(i*64 + bits.TrailingZeros64(w))
			r.FreedBlobs++
			r.FreedBytes += g.Size(id)
		}
	}

	pols := make([]PolicyRetention, len(o.policy.Policies))
	for i, pol := range o.policy.Policies {
		pols[i] = PolicyRetention{Policy: o.policy.PolicyName(i), Index: i, DeleteUntagged: pol.DeleteUntagged || o.deleteUntagged}
	}
	repos := map[string]*RepoRetention{}
	roots := map[string][]uint32{} // repository -> what its removed tags named
	for _, d := range ds {
		rr := repos[d.tag.Repo]
		if rr == nil {
			rr = &RepoRetention{Name: d.tag.Repo, Policy: o.policy.PolicyName(d.policy)}
			repos[d.tag.Repo] = rr
		}
		rr.Tags++
		switch {
		case d.Delete && p.deletesTag(d.tag):
			rr.DeleteTags++
			if d.tag.ID != 0 {
				roots[d.tag.Repo] = append(roots[d.tag.Repo], d.tag.ID)
			}
		case d.Safety:
			rr.KeptBySafety++
		}
	}
	// Repositories a policy applies to without tags count too.
	for _, rp := range g.Repos() {
		if i := o.policy.Match(rp.Name); i >= 0 && repos[rp.Name] == nil {
			repos[rp.Name] = &RepoRetention{Name: rp.Name, Policy: o.policy.PolicyName(i)}
		}
	}
	policyOf := func(repo string) int { return o.policy.Match(repo) }
	reachedBy := make([]graph.Bitset, len(pols)) // per policy, the freed blobs its repositories' removed tags reach
	w := g.NewWalker(graph.WalkOptions{Referrers: o.keepReferrers && o.anyUntagged()})
	names := make([]string, 0, len(repos))
	for n := range repos {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := graph.NewBitset(g.MaxID()) // of one repository's walk, cleared after it
	var touched []uint32
	for _, name := range names {
		rr := repos[name]
		pi := policyOf(name)
		if reachedBy[pi] == nil {
			reachedBy[pi] = graph.NewBitset(g.MaxID())
		}
		_, err := w.Walk(roots[name], func(id, _ uint32, kind graph.EdgeKind) {
			if kind == graph.EdgeSubject || !freed.Has(id) || seen.Set(id) {
				return
			}
			touched = append(touched, id)
			rr.FreedBlobs++
			rr.FreedBytes += g.Size(id)
			reachedBy[pi].Set(id)
		})
		if err != nil {
			return err
		}
		for _, id := range touched {
			seen.Clear(id)
		}
		touched = touched[:0]
		rr.FreedManifests = len(freedRev[name])
		pc := &pols[pi]
		pc.Repositories++
		pc.Tags += rr.Tags
		pc.DeleteTags += rr.DeleteTags
		pc.KeptBySafety += rr.KeptBySafety
		pc.FreedManifests += rr.FreedManifests
		r.Repositories = append(r.Repositories, *rr)
	}
	for i, set := range reachedBy {
		for j, w := range set {
			for ; w != 0; w &= w - 1 {
				id := uint32(j*64 + bits.TrailingZeros64(w))
				pols[i].FreedBlobs++
				pols[i].FreedBytes += g.Size(id)
			}
		}
	}
	r.Policies = pols
	slices.SortFunc(r.Repositories, func(a, b RepoRetention) int {
		return cmp.Or(cmp.Compare(b.FreedBytes, a.FreedBytes), cmp.Compare(a.Name, b.Name))
	})
	p.Retention = r
	return nil
}

// deletesTag reports whether the plan deletes tag t (the plan being applied may
// keep what the policy would delete).
func (p *Plan) deletesTag(t graph.Tag) bool {
	_, ok := slices.BinarySearchFunc(p.Tags, t, func(it TagItem, t graph.Tag) int {
		return cmp.Or(cmp.Compare(it.Repository, t.Repo), cmp.Compare(it.Tag, t.Name))
	})
	return ok
}
