package main

import (
	"strconv"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

// The report's sums travel as "name" -> n pairs summed per name: the summary's
// counts by their own names, a repository's by repoSum.
const repoSumPrefix = "repo:"

func repoSum(field, repo string) string { return repoSumPrefix + field + "\x00" + repo }

type reportInputs struct {
	entries, revs, tags, blobs, mans, near beam.PCollection
	inner                                  beam.PCollection // the manifests a walk goes through (innerOnly)
	expanded                               beam.PCollection // manifest -> the best label a root reaches it with
}

// report adds the stages of the plan's summary and its lines per repository, as
// regsweep gc counts them: each repository's live manifests walked on their own
// (children, config, layers; no referrers, no subjects) to tell the bytes it alone
// holds from those it shares. The deleted blobs it links are summed where links
// meet blobs (linkJoin). It returns the repositories' names as records, and sums.
func report(s beam.Scope, o Options, in reportInputs) (beam.PCollection, beam.PCollection) {
	s = s.Scope("report")
	names := distinct(s, beam.ParDo(s, repoName, in.entries))
	sums := []beam.PCollection{beam.ParDo(s, tagSums, in.tags), beam.ParDo(s, manifestSums, in.mans)}
	if o.Untagged && o.KeepReferrers {
		sums = append(sums, beam.ParDo(s, referrerSums, in.expanded))
	}

	roots, rootSums := beam.ParDo2(s, repoRoots, beam.CoGroupByKey(s, in.revs, in.expanded))
	sums = append(sums, rootSums)
	frontier := distinct(s, roots)
	var expanded []beam.PCollection
	for range o.Rounds {
		push := beam.ParDo(s, repoExpandFn, beam.CoGroupByKey(s, beam.ParDo(s, byDigest, frontier), in.inner, in.near))
		expanded = append(expanded, frontier)
		frontier = minus(s, push, beam.Flatten(s, expanded...))
	}
	walked := distinct(s, beam.Flatten(s, expanded...))
	visited := beam.ParDo(s, repoVisitFn, beam.CoGroupByKey(s, beam.ParDo(s, byDigest, walked), in.mans))
	reached := distinct(s, beam.Flatten(s, walked, visited))
	sums = append(sums, beam.ParDo(s, bytesSums, beam.CoGroupByKey(s, beam.ParDo(s, byDigest, reached), in.blobs)))
	return beam.ParDo(s, repoRecord, names), beam.Flatten(s, sums...)
}

// repoName: every repository directory with _manifests has a line.
func repoName(v string, emit func(string, string)) {
	if e := entryOf(v); e.Kind == storage.KindRepo && e.HasManifests {
		emit(e.Repo, "")
	}
}

func repoRecord(name, _ string, record func(string)) { record(recRepo + "\t" + name) }

func tagSums(_, v string, sum func(string, int64)) {
	sum("tags", 1)
	sum(repoSum("tags", entryOf(v).Repo), 1)
}

func manifestSums(_, v string, sum func(string, int64)) {
	switch m := manifestOf(v); {
	case m.Unreadable != "":
		sum("unreadable_manifests", 1)
	case !m.Missing:
		sum("manifests", 1)
	}
}

// referrerSums counts the manifests only the referrer rule keeps.
func referrerSums(_, label string, sum func(string, int64)) {
	if label == labelReferrer {
		sum("referrers_kept", 1)
	}
}

// repoRoots: a repository's revisions of live manifests (grace included) are its
// manifests and where its walk starts.
func repoRoots(d string, revs, expanded func(*string) bool, root func(string, string), sum func(string, int64)) {
	var v string
	if !expanded(&v) {
		return
	}
	for revs(&v) {
		repo := entryOf(v).Repo
		root(repoKey(repo, digest.Digest(d)), "")
		sum(repoSum("manifests", repo), 1)
	}
}

// byDigest turns repository\x00digest keys into digest -> repository.
func byDigest(k, _ string, emit func(string, string)) {
	repo, d, _ := strings.Cut(k, "\x00")
	emit(d, repo)
}

// repoExpandFn expands a manifest for each repository whose walk reached it, as
// expandFn does without referrers.
func repoExpandFn(d string, repos, inner, near func(*string) bool, push func(string, string)) {
	var v string
	if !inner(&v) {
		return
	}
	m := manifestOf(v)
	next := m.Children
	if m.blocked() {
		next = m.Mentions
		for near(&v) {
			if v != d {
				next = append(next, v)
			}
		}
	}
	for repos(&v) {
		for _, x := range next {
			push(repoKey(v, digest.Digest(x)), "")
		}
	}
}

// repoVisitFn visits the config and layers of a manifest for each repository whose
// walk went through it.
func repoVisitFn(d string, repos, mans func(*string) bool, visit func(string, string)) {
	var v string
	if !mans(&v) {
		return
	}
	m := manifestOf(v)
	if m.blocked() {
		return
	}
	for repos(&v) {
		for _, b := range m.Blobs {
			visit(repoKey(v, digest.Digest(b)), "")
		}
	}
}

// bytesSums adds a present blob's size to each repository that reaches it, and to
// its unique bytes where it is the only one.
func bytesSums(_ string, repos, blobs func(*string) bool, sum func(string, int64)) {
	var v string
	if !blobs(&v) {
		return
	}
	size := entryOf(v).Size
	var rs []string
	for repos(&v) {
		rs = append(rs, v)
	}
	for _, r := range rs {
		sum(repoSum("bytes", r), size)
		if len(rs) == 1 {
			sum(repoSum("unique_bytes", r), size)
		}
	}
}

// reclaim adds a deleted blob's size to each repository that links it, once.
func reclaim(size string, layers []string, revs func(*string) bool, sum func(string, int64)) {
	n, _ := strconv.ParseInt(size, 10, 64)
	seen := map[string]bool{}
	add := func(v string) {
		if r := entryOf(v).Repo; !seen[r] {
			seen[r] = true
			sum(repoSum("reclaimable_bytes", r), n)
		}
	}
	for _, v := range layers {
		add(v)
	}
	var v string
	for revs(&v) {
		add(v)
	}
}

func init() {
	for _, fn := range []any{repoName, repoRecord, tagSums, manifestSums, referrerSums, repoRoots, byDigest, repoExpandFn, repoVisitFn, bytesSums} {
		beam.RegisterFunction(fn)
	}
}
