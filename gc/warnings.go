package gc

import (
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/graph"
)

// The warnings a plan adds to what the scan found, worded once for every engine
// that makes a plan (regsweep-beam's pipeline too). Paths are the callers'.

// UnreadableWarning: repo links manifest d, which cannot be read (why); blocked
// when a root reaches it.
func UnreadableWarning(repo string, d digest.Digest, blobPath, why string, blocked bool) graph.Warning {
	w := graph.Warning{Kind: "unreadable_manifest", Repository: repo, Digest: d.String(), Path: blobPath, Detail: why}
	if blocked {
		w.Detail += "; a live root reaches it, so every blob it might reference is kept and a sweep refuses"
	}
	return w
}

// BrokenRootWarning: repo's revision link at revPath (and its tags) name manifest
// d, whose blob data is missing.
func BrokenRootWarning(repo string, d digest.Digest, blobPath, revPath string, tags []string) graph.Warning {
	what := "revision link " + revPath
	if len(tags) > 0 {
		what = "tag " + strings.Join(tags, ", ") + " and " + what
	}
	return graph.Warning{Kind: "broken_root", Repository: repo, Digest: d.String(), Path: blobPath,
		Detail: what + " name a manifest whose blob data is missing: the sweep refuses and everything " + repo + " links is kept. If the blob store is mounted and complete, delete the manifest through the registry API and run again"}
}

// MissingManifestWarning: a live index references manifest d, whose data is missing.
func MissingManifestWarning(d digest.Digest, blobPath string) graph.Warning {
	return graph.Warning{Kind: "missing_manifest", Digest: d.String(), Path: blobPath,
		Detail: "a live index references a manifest whose blob data is missing: what it references is unknown, so the sweep refuses"}
}

// MissingBlobWarning: live manifest parent references blob d, whose data is missing.
func MissingBlobWarning(d digest.Digest, blobPath string, parent digest.Digest) graph.Warning {
	return graph.Warning{Kind: "missing_blob", Digest: d.String(), Path: blobPath,
		Detail: "live manifest " + parent.String() + " references it but its data is missing: that image cannot be pulled"}
}

// DanglingTagWarning: the tag at tagPath names manifest d, which repo has no
// revision link for.
func DanglingTagWarning(repo string, d digest.Digest, tagPath string) graph.Warning {
	return graph.Warning{Kind: "dangling_tag", Repository: repo, Digest: d.String(), Path: tagPath,
		Detail: "tag names a manifest without a revision link in this repository; the registry cannot serve it"}
}

// DanglingLinkWarning: the layer link at linkPath names blob d, whose data is missing.
func DanglingLinkWarning(repo string, d digest.Digest, linkPath string) graph.Warning {
	return graph.Warning{Kind: "dangling_link", Repository: repo, Digest: d.String(), Path: linkPath, Detail: "layer link names a blob whose data is missing"}
}
