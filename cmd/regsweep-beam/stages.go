package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/storage"
)

// The plan's records, one a line: "<kind>\t<json>".
const (
	recBlob     = "B" // {"digest","size"}
	recManifest = "M" // gc.ManifestItem
	recLink     = "L" // gc.LinkItem
	recUpload   = "U" // gc.UploadItem
	recBlocked  = "X" // graph.Warning
	recKept     = "K" // gc.KeptItem
	recRepo     = "R" // a repository's name: it has a line in the report
	recCount    = "C" // name\tcount: the completeness check's counts and the report's sums
)

type blobRecord struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// Build adds the plan's stages to s: listing by shard, manifests read and parsed,
// reachability in o.Rounds joins, and the plan joined from the listing and the live
// set. It returns the plan's records.
func Build(s beam.Scope, o Options) beam.PCollection {
	// Listing: the roots, then every shard on its own.
	shards, rootEntries := beam.ParDo2(s, &rootsFn{opener{O: o}}, beam.Impulse(s))
	scanned := beam.ParDo(s, &scanFn{opener{O: o}}, beam.Reshuffle(s, shards))
	entries := beam.Flatten(s, rootEntries, scanned)
	pick := func(what string) beam.PCollection {
		return beam.ParDo(s.Scope(what), &pickFn{What: what, Untagged: o.Untagged}, entries)
	}
	blobs, revs, layers, tags := pick(pickBlobs), pick(pickRevs), pick(pickLayers), pick(pickTags)
	tagIndex, uploads, scanFacts := pick(pickTagIndex), pick(pickUploads), pick(pickFacts)
	factsIn := beam.SideInput{Input: scanFacts}

	// Manifests: every revision link and tag names one; index children are read
	// level by level.
	toRead := distinct(s, beam.Flatten(s, beam.ParDo(s, linkTargets, revs), beam.ParDo(s, tagTarget, tags)))
	fresh := beam.ParDo(s, &readFn{opener{O: o}}, beam.Reshuffle(s, toRead))
	manifests, known := []beam.PCollection{fresh}, []beam.PCollection{toRead}
	for range o.ReadRounds {
		kids := minus(s, beam.ParDo(s, childrenOf, fresh), beam.Flatten(s, known...))
		fresh = beam.ParDo(s, &readFn{opener{O: o}}, beam.Reshuffle(s, kids))
		manifests, known = append(manifests, fresh), append(known, kids)
	}
	failIfAny(s, minus(s, beam.ParDo(s, childrenOf, fresh), beam.Flatten(s, known...)),
		fmt.Sprintf("an index nested more than %d levels deep", o.ReadRounds+1), "--read-rounds")
	mans := beam.Flatten(s, manifests...)

	// Roots, and the counts the completeness check needs.
	// A DoFn reading side inputs never consumes a CoGroupByKey itself: the Go SDK
	// cannot encode the grouped values across the stage break the side input makes.
	revRoots := beam.ParDo(s, &revRootFn{O: o}, beam.ParDo(s, revJoin, beam.CoGroupByKey(s, revs, mans)), factsIn)
	tagRoots := beam.ParDo(s, &tagRootFn{O: o}, beam.CoGroupByKey(s, tags, beam.ParDo(s, byRepo, revs)))
	counts := []beam.PCollection{beam.ParDo(s, countRoots, beam.CoGroupByKey(s, beam.Flatten(s, beam.ParDo(s, revID, revs), beam.ParDo(s, tagTarget, tags)), mans))}

	// Reachability: each round expands the frontier's manifests once. What is
	// reached carries a label (labelOld and the others): the best way a root reaches
	// it, which tells live from kept by grace, and what the referrer rule alone keeps.
	refs := beam.ParDo(s, &referrersOf{On: o.Untagged && o.KeepReferrers}, mans)
	near := nearRevisions(s, mans, revs)
	// The rounds join the frontier with the manifests that lead somewhere (indexes,
	// and blocked ones): most manifests are images, whose config and layers one join
	// after the rounds visits.
	frontier := best(s, beam.Flatten(s, revRoots, tagRoots))
	inner := beam.ParDo(s, innerOnly, mans)
	var expanded, blocked []beam.PCollection
	for range o.Rounds {
		push, block := beam.ParDo2(s, expandFn, beam.CoGroupByKey(s, frontier, inner, refs, near))
		expanded, blocked = append(expanded, frontier), append(blocked, block)
		frontier = beam.ParDo(s, betterFn, beam.CoGroupByKey(s, push, beam.Flatten(s, expanded...)))
	}
	failIfAny(s, frontier, fmt.Sprintf("references more than %d manifests deep from a root", o.Rounds), "--rounds")
	expandedAll := best(s, beam.Flatten(s, expanded...))
	visited, parents := beam.ParDo2(s, visitFn, beam.CoGroupByKey(s, expandedAll, mans))
	live := best(s, beam.Flatten(s, visited, expandedAll))
	blockedAll := beam.Flatten(s, blocked...)

	// What a reached unreadable manifest adds: its repositories' layer links keep
	// their blobs, and one not read to its end keeps every blob.
	facts := beam.Flatten(s, scanFacts, beam.ParDo(s, blockedFacts, beam.CoGroupByKey(s, blockedAll, revs)))
	allIn := beam.SideInput{Input: facts}
	keptByLink := beam.ParDo(s, &keptByLinkFn{O: o}, layers, allIn)

	var records []beam.PCollection
	// The joins by blob digest also give the warnings and sums that need the same
	// keys: each is a shuffle of collections as large as the blob store.
	present, missingWarns := beam.ParDo2(s, blobJoin, beam.CoGroupByKey(s, blobs, live, keptByLink, parents))
	deleted, blobRecs, sums := beam.ParDo3(s, &blobFn{O: o}, present, allIn)
	records = append(records, blobRecs, missingWarns)
	sumsAll := []beam.PCollection{sums}
	goneLinks, linkWarns, reclaimed := beam.ParDo3(s, linkJoin, beam.CoGroupByKey(s, layers, blobs, live, keptByLink, deleted, revs))
	records = append(records, beam.ParDo(s, &linkFn{}, goneLinks, allIn), linkWarns)
	sumsAll = append(sumsAll, reclaimed)
	if o.Untagged {
		cand, kept, sums := beam.ParDo3(s, &unlinkedFn{O: o}, beam.ParDo(s, unlinkedJoin, beam.CoGroupByKey(s, revs, expandedAll)), allIn)
		records = append(records, beam.ParDo(s, manifestItem, beam.CoGroupByKey(s, cand, tagIndex)), kept)
		sumsAll = append(sumsAll, sums)
	}
	repoRecs, repoSums := report(s, o, reportInputs{entries: entries, revs: revs, tags: tags, blobs: blobs,
		mans: mans, inner: inner, near: near, expanded: expandedAll})
	records = append(records, repoRecs)
	sumsAll = append(sumsAll, repoSums)
	records = append(records, beam.ParDo(s, sumRecord, stats.SumPerKey(s, beam.Flatten(s, sumsAll...))))
	records = append(records, beam.ParDo(s, &uploadFn{O: o}, uploads))
	records = append(records, warnings(s, warnInputs{entries: entries, revs: revs, tags: tags, mans: mans, blocked: blockedAll}))
	records = append(records, beam.ParDo(s, countRecord, stats.Count(s, beam.Flatten(s, counts...))))
	return beam.Flatten(s, records...)
}

// Labels of what a walk reaches, best first: from a root (not young) by the
// references that keep; from such a root only through a referrer (what
// distribution's GC deletes); from a young root alone (grace keeps it, it is not
// live).
const (
	labelOld      = "o"
	labelReferrer = "r"
	labelYoung    = "y"
)

func rank(label string) int {
	if label == "" {
		return 0
	}
	return strings.Index("yro", label) + 1
}

// bestOf returns the best label values hold.
func bestOf(values func(*string) bool) string {
	var v, b string
	for values(&v) {
		if rank(v) > rank(b) {
			b = v
		}
	}
	return b
}

// best returns each key of kv once, with the best label its values hold.
func best(s beam.Scope, kv beam.PCollection) beam.PCollection {
	return beam.ParDo(s, bestFn, beam.GroupByKey(s, kv))
}

func bestFn(k string, values func(*string) bool, emit func(string, string)) { emit(k, bestOf(values)) }

// betterFn passes the keys pushed with a better label than they were expanded with.
func betterFn(k string, push, done func(*string) bool, emit func(string, string)) {
	if b := bestOf(push); rank(b) > rank(bestOf(done)) {
		emit(k, b)
	}
}

// distinct returns each key of kv once, with an empty value.
func distinct(s beam.Scope, kv beam.PCollection) beam.PCollection {
	return beam.ParDo(s, firstKey, beam.GroupByKey(s, kv))
}

func firstKey(k string, _ func(*string) bool, emit func(string, string)) { emit(k, "") }

// minus returns the keys of a that b does not hold, once each.
func minus(s beam.Scope, a, b beam.PCollection) beam.PCollection {
	return beam.ParDo(s, minusFn, beam.CoGroupByKey(s, a, b))
}

func minusFn(k string, a, b func(*string) bool, emit func(string, string)) {
	var v string
	if a(&v) && !b(&v) {
		emit(k, "")
	}
}

// failIfAny fails the job, closed, if col holds anything.
func failIfAny(s beam.Scope, col beam.PCollection, what, flag string) {
	beam.ParDo0(s, &failFn{What: what, Flag: flag}, col)
}

type failFn struct {
	What string `json:"what"`
	Flag string `json:"flag"`
}

func (f *failFn) ProcessElement(k, _ string) error {
	return fmt.Errorf("%s (at %s): the plan would be incomplete, so none is written; raise %s", f.What, k, f.Flag)
}

func manifestOf(v string) manifestRec {
	var m manifestRec
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		panic(fmt.Sprintf("a manifest record that does not decode: %v", err))
	}
	return m
}

// linkTargets: a revision link names its manifest (and, read, the one its content
// names).
func linkTargets(d, v string, emit func(string, string)) {
	emit(d, "")
	if t := entryOf(v).Target; t != "" && string(t) != d {
		emit(string(t), "")
	}
}

func revID(d, _ string, emit func(string, string)) { emit(d, "") }

func tagTarget(_, v string, emit func(string, string)) {
	if t := entryOf(v).Target; t != "" {
		emit(string(t), "")
	}
}

func byRepo(d, v string, emit func(string, string)) {
	emit(repoKey(entryOf(v).Repo, digest.Digest(d)), v)
}

func childrenOf(d, v string, emit func(string, string)) {
	for _, c := range manifestOf(v).Children {
		emit(c, "")
	}
}

// revRootFn: a revision link is a root unless tags are (-m); and, under -m, where
// its repository is pinned, its link is corrupt, its manifest is missing (a broken
// root), or it is younger than grace.
type revRootFn struct {
	O Options `json:"o"`
	x facts
}

func (f *revRootFn) ProcessElement(d, v string, fx func(*string, *string) bool, emit func(string, string)) {
	f.x.load(fx)
	missing, v := v[0] == '1', v[1:]
	e := entryOf(v)
	label := labelOld
	switch {
	case !f.O.Untagged || f.x.pinned[e.Repo] != "" || e.Warning != "" || missing:
	case f.O.young(e.ModTime):
		label = labelYoung // grace keeps what it alone reaches
	default:
		return
	}
	emit(d, label)
	if e.Target != "" && string(e.Target) != d {
		emit(string(e.Target), label)
	}
}

// revJoin gives each revision link whether its manifest is missing ("1" before it).
func revJoin(d string, revs, mans func(*string) bool, emit func(string, string)) {
	var v string
	flag := "0"
	if mans(&v) && manifestOf(v).Missing {
		flag = "1"
	}
	for revs(&v) {
		emit(d, flag+v)
	}
}

// tagRootFn: a readable tag is a root under -m, and otherwise where its repository
// has no revision link for it (keeping costs nothing, guessing wrong breaks an
// image).
type tagRootFn struct {
	O Options `json:"o"`
}

func (f *tagRootFn) ProcessElement(_ string, tags, revs func(*string) bool, emit func(string, string)) {
	var v string
	linked := revs(&v)
	for tags(&v) {
		if e := entryOf(v); e.Warning == "" && e.Target != "" && (f.O.Untagged || !linked) {
			emit(string(e.Target), labelOld)
		}
	}
}

func countRoots(_ string, refs, mans func(*string) bool, emit func(string)) {
	var v string
	missing := mans(&v) && manifestOf(v).Missing
	for refs(&v) {
		emit("root")
		if missing {
			emit("broken")
		}
	}
}

type referrersOf struct {
	On bool `json:"on"`
}

func (f *referrersOf) ProcessElement(d, v string, emit func(string, string)) {
	if s := manifestOf(v).Subject; f.On && s != "" {
		emit(s, d)
	}
}

// nearRevisions pairs each missing or unreadable manifest with every revision of
// the repositories that link it: any of them might be an index of it.
func nearRevisions(s beam.Scope, mans, revs beam.PCollection) beam.PCollection {
	repoOf := beam.ParDo(s, blockedRepos, beam.CoGroupByKey(s, beam.ParDo(s, blockedOnly, mans), revs))
	return beam.ParDo(s, pairNear, beam.CoGroupByKey(s, repoOf, beam.ParDo(s, repoRev, revs)))
}

func blockedOnly(d, v string, emit func(string, string)) {
	if manifestOf(v).blocked() {
		emit(d, "")
	}
}

func blockedRepos(d string, blocked, revs func(*string) bool, emit func(string, string)) {
	var v string
	if !blocked(&v) {
		return
	}
	for revs(&v) {
		emit(entryOf(v).Repo, d)
	}
}

func repoRev(d, v string, emit func(string, string)) { emit(entryOf(v).Repo, d) }

func pairNear(_ string, blocked, revs func(*string) bool, emit func(string, string)) {
	var b []string
	var v string
	for blocked(&v) {
		b = append(b, v)
	}
	for revs(&v) {
		for _, d := range b {
			emit(d, v)
		}
	}
}

// innerOnly passes the manifests a walk goes through: indexes, and those missing or
// unreadable.
func innerOnly(d, v string, emit func(string, string)) {
	if m := manifestOf(v); m.blocked() || len(m.Children) > 0 {
		emit(d, v)
	}
}

// expandFn expands a frontier manifest with its label: children are pushed; a
// missing or unreadable one is blocked and pushes what it mentions and its
// repositories' revisions; referrers are pushed when followed (what only they reach
// is labelReferrer). Keys that are no frontier pass.
func expandFn(d string, frontier, inner, refs, near func(*string) bool, push, block func(string, string)) {
	label := bestOf(frontier)
	if label == "" {
		return
	}
	var v string
	if inner(&v) {
		m := manifestOf(v)
		if m.blocked() {
			block(d, strconv.FormatBool(m.Partial))
			for _, x := range m.Mentions {
				push(x, label)
			}
			for near(&v) {
				if v != d {
					push(v, label)
				}
			}
		} else {
			for _, c := range m.Children {
				push(c, label)
			}
		}
	}
	viaReferrer := labelReferrer
	if label == labelYoung {
		viaReferrer = labelYoung
	}
	for refs(&v) {
		push(v, viaReferrer)
	}
}

// visitFn visits the config and layers of every manifest the walk expanded, with
// its label; each goes out with its parent too, for the warnings. A subject is not
// visited: a referrer does not keep it.
func visitFn(d string, expanded, mans func(*string) bool, visit, parent func(string, string)) {
	label := bestOf(expanded)
	var v string
	if label == "" || !mans(&v) {
		return
	}
	if m := manifestOf(v); !m.blocked() {
		for _, b := range m.Blobs {
			visit(b, label)
			parent(b, d)
		}
	}
}

// blockedFacts: the repositories that link a reached unreadable manifest, and
// whether it keeps every blob.
func blockedFacts(d string, blocked, revs func(*string) bool, emit func(string, string)) {
	var v string
	partial := false
	seen := false
	for blocked(&v) {
		seen = true
		partial = partial || v == "true"
	}
	if !seen {
		return
	}
	if partial {
		emit(factAll, gc.ReasonPartial)
	}
	for revs(&v) {
		emit(factUnreadable, entryOf(v).Repo)
	}
}

// keptByLinkFn: where a layer link cannot be trusted to be garbage (a pinned
// repository, one linking an unreadable manifest, a corrupt link, a young one),
// the blob it names stays.
type keptByLinkFn struct {
	O Options `json:"o"`
	x facts
}

func (f *keptByLinkFn) ProcessElement(d, v string, fx func(*string, *string) bool, emit func(string, string)) {
	f.x.load(fx)
	e := entryOf(v)
	var why string
	switch {
	case f.x.all != "":
		why = f.x.all
	case f.x.pinned[e.Repo] != "":
		why = "in repository " + e.Repo + ": " + f.x.pinned[e.Repo]
	case f.x.unreadable[e.Repo]:
		why = "linked in " + e.Repo + ", which links an unreadable manifest"
	case e.Warning != "":
		why = "its layer link in " + e.Repo + " is corrupt"
	case f.O.young(e.ModTime):
		why = gc.ReasonGrace
	default:
		return
	}
	// gc gives a blob the reason of the first link that keeps it, in repository order.
	v = e.Repo + "\x00" + d + "\x00" + why
	emit(d, v)
	if e.Target != "" && string(e.Target) != d {
		emit(string(e.Target), v)
	}
}

// blobFn: a present blob goes when nothing live reaches it and nothing keeps it;
// what keeps it is a kept record with gc's reason. It sums the report's blob counts.
type blobFn struct {
	O Options `json:"o"`
	x facts
}

func (f *blobFn) ProcessElement(d, v string, fx func(*string, *string) bool, deleted func(string, string), record func(string), sum func(string, int64)) {
	f.x.load(fx)
	state, v, _ := strings.Cut(v, "\t")
	e := entryOf(v)
	sum("blobs", 1)
	sum("blob_bytes", e.Size)
	kept := func(why string) {
		record(recKept + "\t" + mustJSON(gc.KeptItem{Kind: "blob", Digest: digest.Digest(d), Size: e.Size, Reason: why}))
		if why == gc.ReasonGrace {
			sum("kept_by_grace", 1)
		}
	}
	switch {
	case state == labelYoung:
		kept(gc.ReasonGrace)
	case state != "" && !strings.HasPrefix(state, "k"):
		sum("live_blobs", 1)
		sum("live_bytes", e.Size)
	case state != "":
		kept(state[1:])
	case f.x.protect[d] != "":
		kept(f.x.protect[d])
	case f.x.all != "":
		kept(f.x.all)
	case f.O.young(e.ModTime):
		kept(gc.ReasonGrace)
	default:
		deleted(d, strconv.FormatInt(e.Size, 10))
		record(recBlob + "\t" + mustJSON(blobRecord{Digest: digest.Digest(d), Size: e.Size}))
	}
}

// blobJoin passes every present blob with its state: the best label that reaches
// it, or "k" and why a link keeps it, or "" (nothing keeps it yet). A config or
// layer a live manifest references whose data is missing is a warning.
func blobJoin(d string, blobs, live, kept, parents func(*string) bool, emit func(string, string), record func(string)) error {
	var v string
	if !blobs(&v) {
		return missingBlob(d, parents, record)
	}
	state := bestOf(live)
	if state == "" {
		first := ""
		var k string
		for kept(&k) {
			if first == "" || k < first {
				first = k
			}
		}
		if first != "" {
			state = "k" + first[strings.LastIndexByte(first, 0)+1:]
		}
	}
	emit(d, state+"\t"+v)
	return nil
}

// linkJoin passes each layer link whose blob goes, or whose blob's data is gone and
// nothing live needs, with the reason before it. It adds a deleted blob's size to
// the reclaimable bytes of each repository linking it (once), and warns of layer
// links naming a blob whose data is gone.
func linkJoin(d string, links, blobs, live, kept, deleted, revs func(*string) bool, emit func(string, string), record func(string), sum func(string, int64)) error {
	var all []string
	var v string
	for links(&v) {
		all = append(all, v)
	}
	present := blobs(new(string))
	if !present {
		if err := danglingLinks(d, all, record); err != nil {
			return err
		}
	}
	reason := ""
	var size string
	switch {
	case deleted(&size):
		reason = "blob deleted"
		reclaim(size, all, revs, sum)
	case !present && !live(new(string)) && !kept(new(string)):
		reason = "blob data missing"
	default:
		return nil
	}
	for _, v := range all {
		emit(d, reason+"\t"+v)
	}
	return nil
}

// linkFn: a layer link goes with its blob, or when it names a blob whose data is
// gone that nothing live needs.
type linkFn struct{ x facts }

func (f *linkFn) ProcessElement(d, v string, fx func(*string, *string) bool, record func(string)) error {
	f.x.load(fx)
	reason, v, _ := strings.Cut(v, "\t")
	e := entryOf(v)
	if f.x.protect[d] != "" || f.x.all != "" || e.Warning != "" || f.x.pinned[e.Repo] != "" {
		return nil
	}
	p, err := storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: e.Repo, Digest: digest.Digest(d)})
	if err != nil {
		return fmt.Errorf("layer link of %s in %q: %w", d, e.Repo, err)
	}
	record(recLink + "\t" + mustJSON(gc.LinkItem{Repository: e.Repo, Digest: digest.Digest(d), Path: p, Reason: reason}))
	return nil
}

// unlinkedFn: under -m, the revision links of manifests no root reaches (not
// young) go, unless corrupt, pinned, protected or young: the protected and the
// young are kept records.
type unlinkedFn struct {
	O Options `json:"o"`
	x facts
}

func (f *unlinkedFn) ProcessElement(d, v string, fx func(*string, *string) bool, emit func(string, string), record func(string), sum func(string, int64)) {
	f.x.load(fx)
	youngOnly, v := v[0] == '1', v[1:]
	e := entryOf(v)
	kept := func(why string) {
		record(recKept + "\t" + mustJSON(gc.KeptItem{Kind: "manifest", Repository: e.Repo, Digest: digest.Digest(d), Reason: why}))
	}
	switch {
	case e.Warning != "" || f.x.pinned[e.Repo] != "":
	case f.x.protect[d] != "":
		kept(f.x.protect[d])
	case youngOnly || f.O.young(e.ModTime):
		kept(gc.ReasonGrace)
		sum("kept_by_grace", 1)
	default:
		emit(repoKey(e.Repo, digest.Digest(d)), "")
	}
}

// unlinkedJoin passes the revision links of manifests no root reached but young
// ones, "1" before those only young ones reached.
func unlinkedJoin(d string, revs, expanded func(*string) bool, emit func(string, string)) {
	label := bestOf(expanded)
	if label == labelOld || label == labelReferrer {
		return
	}
	flag := "0"
	if label == labelYoung {
		flag = "1"
	}
	var v string
	for revs(&v) {
		emit(d, flag+v)
	}
}

func manifestItem(k string, cand, tags func(*string) bool, record func(string)) error {
	var v string
	if !cand(&v) {
		return nil
	}
	repo, d, _ := strings.Cut(k, "\x00")
	dg := digest.Digest(d)
	p, err := storage.Path(storage.Spec{Kind: storage.RevisionDir, Repo: repo, Digest: dg})
	if err != nil {
		return fmt.Errorf("revision of %s in %q: %w", d, repo, err)
	}
	item := gc.ManifestItem{Repository: repo, Digest: dg, Path: p}
	for tags(&v) {
		tp, err := storage.Path(storage.Spec{Kind: storage.TagIndexDir, Repo: repo, Tag: v, Digest: dg})
		if err != nil {
			return fmt.Errorf("history of tag %s in %q: %w", v, repo, err)
		}
		item.TagIndex = append(item.TagIndex, tp)
	}
	slices.Sort(item.TagIndex)
	record(recManifest + "\t" + mustJSON(item))
	return nil
}

// uploadFn: an upload started before the upload age goes.
type uploadFn struct {
	O Options `json:"o"`
}

func (f *uploadFn) ProcessElement(_, v string, record func(string)) {
	e := entryOf(v)
	started := e.StartedAt
	if started.IsZero() {
		started = e.ModTime
	}
	if started.After(time.Unix(0, f.O.UploadCutoff)) {
		return
	}
	p, err := storage.Path(storage.Spec{Kind: storage.UploadDir, Repo: e.Repo, Upload: e.Upload})
	if err != nil {
		return
	}
	record(recUpload + "\t" + mustJSON(gc.UploadItem{Repository: e.Repo, ID: e.Upload, StartedAt: started, Size: e.Size, Path: p}))
}

func countRecord(name string, n int, record func(string)) {
	record(recCount + "\t" + name + "\t" + strconv.Itoa(n))
}

func sumRecord(name string, n int64, record func(string)) {
	record(recCount + "\t" + name + "\t" + strconv.FormatInt(n, 10))
}

func init() {
	for _, fn := range []any{&failFn{}, &revRootFn{}, &tagRootFn{}, &referrersOf{}, &keptByLinkFn{}, &blobFn{}, &linkFn{}, &unlinkedFn{}, &uploadFn{}} {
		beam.RegisterType(reflect.TypeOf(fn).Elem())
	}
	for _, fn := range []any{firstKey, minusFn, bestFn, betterFn, sumRecord, linkTargets, revID, tagTarget, byRepo, childrenOf, countRoots, blockedOnly, blockedRepos, repoRev, pairNear, innerOnly, expandFn, visitFn, blockedFacts, manifestItem, countRecord, revJoin, blobJoin, linkJoin, unlinkedJoin} {
		beam.RegisterFunction(fn)
	}
}
