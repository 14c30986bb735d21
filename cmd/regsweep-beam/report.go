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
	entries, revs, tags, layers, blobs, mans, near beam.PCollection
	expanded                                       beam.PCollection // manifest -> the best label a root reaches it with
	deleted                                        beam.PCollection // blob -> size
}

// report adds the stages of the plan's summary and its lines per repository, as
// regsweep gc counts them: each repository's live manifests walked on their own
// (children, config, layers; no referrers, no subjects) to tell the bytes it alone
// holds from those it shares, and the deleted blobs it links. It returns the
// repositories' names as records and the sums.
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
	var expanded, visited []beam.PCollection
	for range o.Rounds {
		push, visit := beam.ParDo2(s, repoExpandFn, beam.CoGroupByKey(s, beam.ParDo(s, byDigest, frontier), in.mans, in.near))
		expanded, visited = append(expanded, frontier), append(visited, visit)
		frontier = minus(s, push, beam.Flatten(s, expanded...))
	}
	reached := distinct(s, beam.Flatten(s, append(visited, expanded...)...))
	sums = append(sums, beam.ParDo(s, bytesSums, beam.CoGroupByKey(s, beam.ParDo(s, byDigest, reached), in.blobs)))
	sums = append(sums, beam.ParDo(s, reclaimSums, beam.CoGroupByKey(s, in.deleted, in.layers, in.revs)))
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
func repoExpandFn(d string, repos, mans, near func(*string) bool, push, visit func(string, string)) {
	var rs []string
	var v string
	for repos(&v) {
		rs = append(rs, v)
	}
	if len(rs) == 0 || !mans(&v) {
		return
	}
	m := manifestOf(v)
	var next, seen []string
	if m.blocked() {
		next = m.Mentions
		for near(&v) {
			if v != d {
				next = append(next, v)
			}
		}
	} else {
		next, seen = m.Children, m.Blobs
	}
	for _, r := range rs {
		for _, x := range next {
			push(repoKey(r, digest.Digest(x)), "")
		}
		for _, x := range seen {
			visit(repoKey(r, digest.Digest(x)), "")
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

// reclaimSums adds a deleted blob's size to each repository that links it, once.
func reclaimSums(_ string, deleted, layers, revs func(*string) bool, sum func(string, int64)) {
	var v string
	if !deleted(&v) {
		return
	}
	size, _ := strconv.ParseInt(v, 10, 64)
	seen := map[string]bool{}
	for _, links := range []func(*string) bool{layers, revs} {
		for links(&v) {
			if r := entryOf(v).Repo; !seen[r] {
				seen[r] = true
				sum(repoSum("reclaimable_bytes", r), size)
			}
		}
	}
}

func init() {
	for _, fn := range []any{repoName, repoRecord, tagSums, manifestSums, referrerSums, repoRoots, byDigest, repoExpandFn, bytesSums, reclaimSums} {
		beam.RegisterFunction(fn)
	}
}
