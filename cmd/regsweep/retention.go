package main

import (
	"fmt"
	"io"
	"time"

	"github.com/regsweep/regsweep/gc"
)

// writeRetentionText shows what retention policies decide: per policy and per
// repository, the tags they delete and what that frees, then the tags themselves.
// verb is "would delete" or "deleted"; top bounds the lists.
func writeRetentionText(w io.Writer, r *gc.Retention, tags []gc.TagItem, verb string, top int) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nRetention policy %s: %s %s; untagging frees %s (%s, %s)\n",
		r.File, verb, plural(len(tags), "tag"), ib(r.FreedBytes), nBlobs(r.FreedBlobs), plural(r.FreedManifests, "manifest revision"))
	for _, p := range r.Policies {
		fmt.Fprintf(w, "  %s: %s, %d of %s, frees %s (%s)", p.Policy, plural(p.Repositories, "repository"), p.DeleteTags, plural(p.Tags, "tag"), ib(p.FreedBytes), nBlobs(p.FreedBlobs))
		if p.KeptBySafety > 0 {
			fmt.Fprintf(w, "; %d kept by safety rules", p.KeptBySafety)
		}
		if !p.DeleteUntagged && p.DeleteTags > 0 {
			fmt.Fprintf(w, "; deleteUntagged is off, so the images stay as untagged manifests and untagging frees nothing")
		}
		fmt.Fprintln(w)
	}
	shown := 0
	for _, x := range r.Repositories {
		if x.DeleteTags == 0 && x.KeptBySafety == 0 {
			continue
		}
		if shown == 0 {
			fmt.Fprintf(w, "\n  %-32s %6s %9s %10s %7s %9s\n", "REPOSITORY", "TAGS", "DELETE", "FREES", "BLOBS", "REVISIONS")
		}
		if shown == top {
			fmt.Fprintf(w, "  … more repositories (use --output json for all)\n")
			break
		}
		shown++
		fmt.Fprintf(w, "  %-32s %6d %9d %10s %7d %9d\n", x.Name, x.Tags, x.DeleteTags, ib(x.FreedBytes), x.FreedBlobs, x.FreedManifests)
	}
	if len(tags) > 0 {
		fmt.Fprintf(w, "\n  Tags the policy does not keep (pushed, manifest, why):\n")
	}
	for i, t := range tags {
		if i == 2*top {
			fmt.Fprintf(w, "  … %d more (use --output json for all)\n", len(tags)-i)
			break
		}
		fmt.Fprintf(w, "  %s:%s  %s  %.19s  %s\n", t.Repository, t.Tag, t.PushedAt.UTC().Format(time.DateOnly), t.Digest, t.Reason)
	}
}
