package main

import (
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// recWarning is a warning of the plan, worded as regsweep gc words it; those that
// block a sweep are recBlocked records too.
const recWarning = "W" // graph.Warning

type warnInputs struct {
	entries, revs, tags, mans beam.PCollection
	blocked                   beam.PCollection // manifest -> "true" when not read to its end
}

// warnings adds the stages of the plan's warnings: what the scan found, manifests
// that cannot be read or are missing, tags without a revision link. Layer links and
// live references to blobs whose data is gone are found in the joins by blob
// (linkJoin, blobJoin).
func warnings(s beam.Scope, in warnInputs) beam.PCollection {
	s = s.Scope("warnings")
	tagsByTarget := beam.ParDo(s, tagByTarget, in.tags)
	return beam.Flatten(s,
		beam.ParDo(s, scanWarnings, in.entries),
		beam.ParDo(s, orphanWarnings, beam.GroupByKey(s, beam.ParDo(s, repoState, in.entries))),
		beam.ParDo(s, schema1Warnings, in.mans),
		beam.ParDo(s, manifestWarnings, beam.CoGroupByKey(s, in.mans, in.blocked, in.revs, tagsByTarget)),
		beam.ParDo(s, danglingTags, beam.CoGroupByKey(s, in.tags, beam.ParDo(s, byRepo, in.revs))),
	)
}

func warn(record func(string), w graph.Warning) {
	record(recWarning + "\t" + mustJSON(w))
	if w.Blocks {
		record(recBlocked + "\t" + mustJSON(w))
	}
}

func scanWarnings(v string, record func(string)) {
	if w, ok := graph.EntryWarning(entryOf(v)); ok {
		warn(record, w)
	}
}

// repoState keys a repository's entries: "m" has _manifests, "w" carries a warning,
// "-" neither; the path after it.
func repoState(v string, emit func(string, string)) {
	e := entryOf(v)
	if e.Kind != storage.KindRepo {
		return
	}
	state := "-"
	switch {
	case e.Warning != "":
		state = "w"
	case e.HasManifests:
		state = "m"
	}
	emit(e.Repo, state+e.Path)
}

// orphanWarnings: a repository found without a warning and never with _manifests.
func orphanWarnings(repo string, states func(*string) bool, record func(string)) {
	var v, path string
	for states(&v) {
		switch v[0] {
		case 'm':
			return
		case '-':
			path = v[1:]
		}
	}
	if path != "" {
		warn(record, graph.OrphanWarning(repo, path))
	}
}

func schema1Warnings(d, v string, record func(string)) error {
	if !manifestOf(v).Schema1 {
		return nil
	}
	p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: digest.Digest(d)})
	if err != nil {
		return err
	}
	warn(record, graph.Schema1Warning(digest.Digest(d), p))
	return nil
}

func tagByTarget(_, v string, emit func(string, string)) {
	if e := entryOf(v); e.Target != "" && e.Warning == "" {
		emit(string(e.Target), e.Repo+"\x00"+e.Tag)
	}
}

// manifestWarnings: every repository linking an unreadable manifest has a warning,
// which blocks where a root reaches it; a missing manifest a root reaches is a
// broken root in each repository linking it, or a missing child of a live index.
func manifestWarnings(d string, mans, blocked, revs, tags func(*string) bool, record func(string)) error {
	var v string
	if !mans(&v) {
		return nil
	}
	m := manifestOf(v)
	isBlocked := blocked(new(string))
	if m.Unreadable == "" && !(m.Missing && isBlocked) {
		return nil
	}
	blobPath, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: digest.Digest(d)})
	if err != nil {
		return err
	}
	var repos []string
	for revs(&v) {
		repos = append(repos, entryOf(v).Repo)
	}
	slices.Sort(repos)
	repos = slices.Compact(repos)
	if m.Unreadable != "" {
		if len(repos) == 0 {
			repos = []string{""}
		}
		for _, r := range repos {
			w := gc.UnreadableWarning(r, digest.Digest(d), blobPath, m.Unreadable, isBlocked)
			if isBlocked {
				record(recBlocked + "\t" + mustJSON(w))
			}
			record(recWarning + "\t" + mustJSON(w))
		}
		return nil
	}
	if len(repos) == 0 {
		w := gc.MissingManifestWarning(digest.Digest(d), blobPath)
		record(recBlocked + "\t" + mustJSON(w))
		record(recWarning + "\t" + mustJSON(w))
		return nil
	}
	tagsOf := map[string][]string{}
	for tags(&v) {
		repo, tag, _ := strings.Cut(v, "\x00")
		tagsOf[repo] = append(tagsOf[repo], tag)
	}
	for _, r := range repos {
		rev, err := storage.Path(storage.Spec{Kind: storage.RevisionLink, Repo: r, Digest: digest.Digest(d)})
		if err != nil {
			return err
		}
		slices.Sort(tagsOf[r])
		w := gc.BrokenRootWarning(r, digest.Digest(d), blobPath, rev, tagsOf[r])
		record(recBlocked + "\t" + mustJSON(w))
		record(recWarning + "\t" + mustJSON(w))
	}
	return nil
}

// danglingTags: a readable tag naming a manifest its repository has no revision
// link for.
func danglingTags(_ string, tags, revs func(*string) bool, record func(string)) error {
	if revs(new(string)) {
		return nil
	}
	var v string
	for tags(&v) {
		e := entryOf(v)
		if e.Warning != "" || e.Target == "" {
			continue
		}
		p, err := storage.Path(storage.Spec{Kind: storage.TagCurrentLink, Repo: e.Repo, Tag: e.Tag})
		if err != nil {
			return err
		}
		warn(record, gc.DanglingTagWarning(e.Repo, e.Target, p))
	}
	return nil
}

// danglingLinks: each readable layer link of a blob whose data is missing.
func danglingLinks(d string, layers []string, record func(string)) error {
	for _, v := range layers {
		e := entryOf(v)
		if e.Warning != "" {
			continue
		}
		p, err := storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: e.Repo, Digest: digest.Digest(d)})
		if err != nil {
			return err
		}
		warn(record, gc.DanglingLinkWarning(e.Repo, digest.Digest(d), p))
	}
	return nil
}

// missingBlob: a config or layer a live manifest references, its data missing. gc
// names the last referencing manifest its walk met; this names the least.
func missingBlob(d string, parents func(*string) bool, record func(string)) error {
	var v, parent string
	for parents(&v) {
		if parent == "" || v < parent {
			parent = v
		}
	}
	if parent == "" {
		return nil
	}
	p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: digest.Digest(d)})
	if err != nil {
		return err
	}
	warn(record, gc.MissingBlobWarning(digest.Digest(d), p, digest.Digest(parent)))
	return nil
}

func init() {
	for _, fn := range []any{scanWarnings, repoState, orphanWarnings, schema1Warnings, tagByTarget, manifestWarnings, danglingTags} {
		beam.RegisterFunction(fn)
	}
}
