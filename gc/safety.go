package gc

import (
	"errors"
	"fmt"

	"github.com/regsweep/regsweep/graph"
)

// ErrIncompleteStorage is returned by NewPlan when the storage does not look like a
// whole registry: tags and revision links but no blob, or many roots whose manifest
// blob is missing. An unmounted volume, a wrong rootdirectory or prefix, or
// credentials that may not list blobs/ look like that, and planning would delete
// every link. WithAllowMassDelete overrides it.
var ErrIncompleteStorage = errors.New("storage looks incomplete")

// MaxBrokenRoots is the share of roots (tag and revision links) whose manifest blob
// may be missing before NewPlan refuses the storage as incomplete. A healthy
// registry has none; a few come from interrupted deletes. More than a tenth is a
// blob store that is not all there.
const MaxBrokenRoots = 0.10

// checkComplete refuses storage that lists roots but not the blobs they name.
func checkComplete(g *graph.Graph) error {
	roots, broken := 0, 0
	count := func(id uint32) {
		roots++
		if m, ok := g.Manifest(id); ok && m.Missing {
			broken++
		}
	}
	for _, l := range g.Revisions() {
		count(l.ID)
	}
	for _, t := range g.Tags() {
		if t.ID != 0 {
			count(t.ID)
		}
	}
	blobs := 0
	for _, w := range g.PresentSet() {
		if w != 0 {
			blobs++
			break
		}
	}
	return CheckComplete(roots, broken, blobs)
}

// CheckComplete is the check NewPlan makes, from counts: roots (tag and revision
// links), broken (those naming a manifest whose blob is missing) and blobs in the
// blob store. For plans made elsewhere (a pipeline).
func CheckComplete(roots, broken, blobs int) error {
	if roots == 0 {
		return nil
	}
	const check = "check that the storage is mounted, that rootdirectory (or the bucket and prefix) is the registry's, and that the credentials may list and read blobs/; --allow-mass-delete overrides this"
	if blobs == 0 {
		return fmt.Errorf("%w: %d tag and revision links but no blob in the blob store: planning would delete every link; %s", ErrIncompleteStorage, roots, check)
	}
	if float64(broken) > MaxBrokenRoots*float64(roots) {
		return fmt.Errorf("%w: %d of %d tag and revision links (more than %.0f%%) name a manifest whose blob is missing; %s", ErrIncompleteStorage, broken, roots, MaxBrokenRoots*100, check)
	}
	return nil
}
