package sweep

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// A registry that still takes pushes can write, after the scan, a root the plan
// never saw: a tag moved to an old manifest, a manifest pushed again, layers linked
// by a push in progress. Such a push may reuse blobs already stored, so it writes
// no new blob file that grace could see. RootCheck lists the repositories' links
// again and walks what was written since the scan, so that a sweep keeps it.
//
// It narrows the window; it does not close it: a push between the last check and
// the delete of a batch is not seen. Only a registry that accepts no writes makes a
// sweep safe.

// RootCheck finds what links written since a scan reach.
type RootCheck struct {
	drv           driver.StorageDriver
	g             *graph.Graph
	since         time.Time
	workers       int
	keepReferrers bool

	mu        sync.Mutex
	walked    map[string]time.Time // link path -> time of the version walked
	protect   map[digest.Digest]string
	roots     int
	checks    int
	referrers map[digest.Digest][]digest.Digest // subject -> referrers, from the index
	known     map[uint64]bool                   // revision links and tag names the scan saw
}

// ErrUnreliableListing is returned by the first check when it lists a revision
// link or a tag that the scan did not list and that is older than the scan: the
// storage's listings miss things (an eventually consistent or faulty store), and a
// plan made from one may delete what a missed root references. Nothing has been
// deleted when it comes.
var ErrUnreliableListing = errors.New("the storage listed roots the scan did not")

// RecheckSlack is how far before the scan's start a link's time must be for the
// check to trust that the scan saw it: the clocks of the registry's hosts and of
// an object store differ from ours. It never exceeds the grace period: what was
// written within grace before the run is kept by grace already, and --grace 0 says
// that nothing races the run.
const RecheckSlack = 5 * time.Minute

// NewRootCheck checks drv for links written after scanStart (when the scan g was
// loaded from started: g.Meta().Started), less the smaller of grace and
// RecheckSlack; g gives the roots the scan saw and the referrers of manifests it
// knew. keepReferrers follows the plan's mode.
func NewRootCheck(drv driver.StorageDriver, g *graph.Graph, scanStart time.Time, grace time.Duration, workers int, keepReferrers bool) *RootCheck {
	return &RootCheck{drv: drv, g: g, since: scanStart.Add(-min(grace, RecheckSlack)), workers: max(1, workers), keepReferrers: keepReferrers,
		walked: map[string]time.Time{}, protect: map[digest.Digest]string{}}
}

// Check lists the links again and returns every digest that links written since
// the scan reach, with why, and how many such roots it has found in all.
func (c *RootCheck) Check(ctx context.Context) (map[digest.Digest]string, int, error) {
	type root struct {
		d   digest.Digest
		why string
	}
	var (
		roots []root
		tags  []storage.Entry
	)
	if err := c.loadKnown(); err != nil {
		return nil, 0, err
	}
	c.checks++
	var missed []string // roots older than the scan that it did not list
	err := storage.Scan(ctx, c.drv, func(e storage.Entry) error {
		recent := e.ModTime.After(c.since)
		if c.walked[e.Path].Equal(e.ModTime) && !e.ModTime.IsZero() {
			return nil
		}
		unknown := false
		switch e.Kind {
		case storage.RevisionLink:
			unknown = !c.known[knownKey(e.Repo, "", e.Digest)]
		case storage.TagCurrentLink:
			unknown = !c.known[knownKey(e.Repo, e.Tag, "")]
		}
		if !recent && !unknown {
			return nil
		}
		if unknown && !recent {
			missed = append(missed, e.Path)
		}
		switch e.Kind {
		case storage.RevisionLink:
			roots = append(roots, root{e.Digest, "revision link in " + e.Repo + " written during the run or missed by the scan"})
		case storage.TagCurrentLink:
			tags = append(tags, e)
		case storage.LayerLink:
			// A push in progress links its layers before its manifest comes.
			c.keep(e.Digest, "layer link in "+e.Repo+" written during the run")
		default:
			return nil
		}
		c.walked[e.Path] = e.ModTime
		return nil
	}, storage.WithLinkTimesOnly(), storage.WithWorkers(c.workers))
	if err != nil {
		return nil, 0, fmt.Errorf("re-check roots: %w", err)
	}
	if len(missed) > 0 && c.checks == 1 {
		slices.Sort(missed)
		return nil, 0, fmt.Errorf("%w: %d links older than the scan, first %s; nothing was deleted. Run again; if it happens again, the store's listings are not reliable enough to collect garbage from", ErrUnreliableListing, len(missed), missed[0])
	}
	read := storage.ReadDriver(c.drv)
	for _, t := range tags {
		b, err := read.GetContent(ctx, t.Path)
		if err != nil {
			if errors.As(err, new(driver.PathNotFoundError)) {
				continue // untagged since
			}
			return nil, 0, fmt.Errorf("re-check roots: read %s: %w", t.Path, err)
		}
		d, err := digest.Parse(string(b))
		if err != nil {
			return nil, 0, fmt.Errorf("re-check roots: tag %s in %s was written during the run and does not name a digest (%.80q): stopping", t.Tag, t.Repo, b)
		}
		roots = append(roots, root{d, "tag " + t.Repo + ":" + t.Tag + " written during the run or missed by the scan"})
	}
	for _, r := range roots {
		c.roots++
		if err := c.walk(ctx, r.d, r.why); err != nil {
			return nil, 0, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[digest.Digest]string, len(c.protect))
	for d, why := range c.protect {
		out[d] = why
	}
	return out, c.roots, nil
}

func (c *RootCheck) keep(d digest.Digest, why string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.protect[d]; ok {
		return false
	}
	c.protect[d] = why
	return true
}

// walk keeps d and everything it references, reading manifests from storage: a
// root pushed during the run may be a manifest the index never saw.
func (c *RootCheck) walk(ctx context.Context, d digest.Digest, why string) error {
	stack := []digest.Digest{d}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !c.keep(d, why) {
			continue
		}
		p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
		if err != nil {
			return fmt.Errorf("re-check roots: %s: %w", d, err)
		}
		rc, err := storage.ReadDriver(c.drv).Reader(ctx, p, 0)
		if errors.As(err, new(driver.PathNotFoundError)) {
			continue // pushed again after this run deleted it: the push brings it back
		}
		if err != nil {
			return fmt.Errorf("re-check roots: read %s: %w", p, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, graph.MaxManifestSize+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("re-check roots: read %s: %w", p, err)
		}
		m, err := graph.ParseManifest(b)
		if err != nil || len(b) > graph.MaxManifestSize {
			return fmt.Errorf("re-check roots: %s (%s) was pushed during the run and cannot be parsed (%v): stopping, so that nothing it references is deleted; run again with the registry read-only", d, why, err)
		}
		for _, r := range m.Refs {
			switch r.Kind {
			case graph.EdgeSubject:
				// A referrer does not keep its subject.
			case graph.EdgeChild:
				stack = append(stack, r.Digest)
			default:
				c.keep(r.Digest, why)
			}
		}
		if c.keepReferrers {
			refs, err := c.referrersOf(d)
			if err != nil {
				return err
			}
			stack = append(stack, refs...)
		}
	}
	return nil
}

// knownKey names a revision link (repo, d) or a tag (repo, tag) of the scan.
func knownKey(repo, tag string, d digest.Digest) uint64 {
	h := fnv.New64a()
	h.Write([]byte(repo))
	h.Write([]byte{0})
	h.Write([]byte(tag))
	h.Write([]byte{0})
	h.Write([]byte(d))
	return h.Sum64()
}

// loadKnown reads, once, which revision links and tags the scan listed: 8 bytes
// each (a 64-bit hash; a collision can only hide a missed root the time checks
// still see when it is recent).
func (c *RootCheck) loadKnown() error {
	if c.known != nil {
		return nil
	}
	known := map[uint64]bool{}
	for _, l := range c.g.Revisions() {
		d, err := c.g.Digest(l.ID)
		if err != nil {
			return fmt.Errorf("re-check roots: %w", err)
		}
		known[knownKey(l.Repo, "", d)] = true
	}
	for _, t := range c.g.Tags() {
		known[knownKey(t.Repo, t.Name, "")] = true
	}
	c.known = known
	return nil
}

// referrersOf returns the manifests the index knows whose subject is d.
func (c *RootCheck) referrersOf(d digest.Digest) ([]digest.Digest, error) {
	if c.referrers == nil {
		c.referrers = map[digest.Digest][]digest.Digest{}
		for _, id := range c.g.ManifestIDs() {
			refs := c.g.Referrers(id)
			if len(refs) == 0 {
				continue
			}
			sd, err := c.g.Digest(id)
			if err != nil {
				return nil, fmt.Errorf("re-check roots: %w", err)
			}
			for _, r := range refs {
				rd, err := c.g.Digest(r)
				if err != nil {
					return nil, fmt.Errorf("re-check roots: %w", err)
				}
				c.referrers[sd] = append(c.referrers[sd], rd)
			}
		}
	}
	return c.referrers[d], nil
}
