package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Tag is what deciding needs to know of a tag.
type Tag struct {
	Name string
	// PushedAt is when the tag was last pushed: the time of its current link,
	// which distribution rewrites on every push. Zero when unknown.
	PushedAt time.Time
	// Unreadable: the current link could not be read, so which manifest the tag
	// names is unknown.
	Unreadable bool
}

// Decision is what the policy decided for one tag.
type Decision struct {
	Tag    string
	Delete bool
	// Rule says why: what keeps the tag, or, for a deletion, why no entry keeps it.
	Rule string
	// Safety: no entry keeps the tag, a safety rule does (grace, an unknown push
	// time, an unreadable link, the last tag of a repository).
	Safety bool
}

// Decide applies the first policy matching repo to its tags. It returns that
// policy's index (-1 when none matches: every tag is kept) and one decision per tag,
// in the order given. now is when the run counts from: pushedWithin and grace count
// back from it.
func (f *File) Decide(repo string, tags []Tag, now time.Time, grace time.Duration) (int, []Decision) {
	out := make([]Decision, len(tags))
	for i, t := range tags {
		out[i] = Decision{Tag: t.Name}
	}
	pi := f.Match(repo)
	if pi < 0 {
		for i := range out {
			out[i].Rule = "no policy matches the repository"
		}
		return pi, out
	}
	if err := f.compile(); err != nil {
		// Checked by Parse; a File built in code with a bad pattern keeps everything.
		for i := range out {
			out[i].Rule, out[i].Safety = err.Error(), true
		}
		return pi, out
	}
	p := f.Policies[pi]
	if len(p.KeepTags) == 0 {
		for i := range out {
			out[i].Rule = "the policy has no keepTags: every tag is kept"
		}
		return pi, out
	}
	kept := make([]string, len(tags))      // the first entry that keeps each tag, and how
	notKept := make([][]string, len(tags)) // why each entry does not
	for j, k := range p.KeepTags {
		k.decide(j, tags, now, kept, notKept)
	}
	anyKept := false
	for i, t := range tags {
		d := &out[i]
		switch {
		case kept[i] != "":
			d.Rule = kept[i]
		case t.Unreadable:
			d.Rule, d.Safety = "its current link is unreadable: which manifest it names is unknown", true
		case t.PushedAt.IsZero():
			d.Rule, d.Safety = "its push time is unknown", true
		case t.PushedAt.After(now.Add(-grace)):
			d.Rule, d.Safety = fmt.Sprintf("pushed %s ago, within the grace period (%s)", ago(now.Sub(t.PushedAt)), short(grace)), true
		case len(notKept[i]) == 0:
			d.Delete, d.Rule = true, "no keepTags entry's patterns match it"
		default:
			d.Delete, d.Rule = true, "no keepTags entry keeps it: "+strings.Join(notKept[i], "; ")
		}
		anyKept = anyKept || !d.Delete
	}
	if !anyKept && len(tags) > 0 && !p.AllowEmpty {
		last := 0
		for i := range tags {
			if newer(tags[i], tags[last]) {
				last = i
			}
		}
		out[last] = Decision{Tag: tags[last].Name, Rule: "the last tag of the repository, kept since the policy does not say allowEmpty: true", Safety: true}
	}
	return pi, out
}

// decide records, for entry j, which tags it keeps and why the others are not.
func (k Keep) decide(j int, tags []Tag, now time.Time, kept []string, notKept [][]string) {
	name := fmt.Sprintf("keepTags[%d]", j)
	var sel []int // readable tags the patterns select
	for i, t := range tags {
		if t.Unreadable {
			continue
		}
		if !k.matches(t.Name) {
			continue // reasons name only the entries that select the tag
		}
		sel = append(sel, i)
	}
	keep := func(i int, why string) {
		if kept[i] == "" {
			kept[i] = name + ": " + why
		}
	}
	if k.MostRecentlyPushedCount == nil && k.PushedWithin.Duration == 0 && k.SemverCount == nil {
		for _, i := range sel {
			if len(k.Patterns) == 0 {
				keep(i, "keeps every tag")
			} else {
				keep(i, "matches "+strings.Join(k.Patterns, " or "))
			}
		}
		return
	}
	keepBy := map[int]bool{}
	if n := k.MostRecentlyPushedCount; n != nil {
		// Tags of unknown time are not ranked: they stay regardless, and one
		// counted as newest could push out a tag that is.
		var known []int
		for _, i := range sel {
			if !tags[i].PushedAt.IsZero() {
				known = append(known, i)
			}
		}
		slices.SortFunc(known, func(a, b int) int {
			switch {
			case a == b:
				return 0
			case newer(tags[a], tags[b]):
				return -1
			}
			return 1
		})
		for r, i := range known {
			if r < *n {
				keep(i, fmt.Sprintf("among the %d most recently pushed", *n))
				keepBy[i] = true
			}
		}
	}
	if d := k.PushedWithin.Duration; d > 0 {
		for _, i := range sel {
			if t := tags[i].PushedAt; !t.IsZero() && t.After(now.Add(-d)) {
				keep(i, "pushed within "+short(d))
				keepBy[i] = true
			}
		}
	}
	semverOf := map[int]*semver.Version{}
	if n := k.SemverCount; n != nil {
		var vs []int
		for _, i := range sel {
			if v := Semver(tags[i].Name); v != nil {
				semverOf[i] = v
				vs = append(vs, i)
			}
		}
		slices.SortFunc(vs, func(a, b int) int {
			return cmp.Or(semverOf[b].Compare(semverOf[a]), cmp.Compare(tags[b].Name, tags[a].Name))
		})
		for r, i := range vs {
			if r < *n {
				keep(i, fmt.Sprintf("among the %d highest semantic versions", *n))
				keepBy[i] = true
			}
		}
	}
	for _, i := range sel {
		if keepBy[i] {
			continue
		}
		var why []string
		if n := k.MostRecentlyPushedCount; n != nil {
			why = append(why, fmt.Sprintf("not among the %d most recently pushed", *n))
		}
		if d := k.PushedWithin.Duration; d > 0 {
			why = append(why, fmt.Sprintf("pushed %s ago, not within %s", ago(now.Sub(tags[i].PushedAt)), short(d)))
		}
		if n := k.SemverCount; n != nil {
			if semverOf[i] == nil {
				why = append(why, "not a semantic version")
			} else {
				why = append(why, fmt.Sprintf("not among the %d highest semantic versions", *n))
			}
		}
		notKept[i] = append(notKept[i], name+": "+strings.Join(why, ", "))
	}
}

func (k Keep) matches(tag string) bool {
	if len(k.re) == 0 {
		return true
	}
	for _, re := range k.re {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// newer orders tags by push time, newest first, then by name, last first: the
// order mostRecentlyPushedCount counts in, deterministic when times are equal.
func newer(a, b Tag) bool {
	if !a.PushedAt.Equal(b.PushedAt) {
		return a.PushedAt.After(b.PushedAt)
	}
	return a.Name > b.Name
}

// Semver parses a tag as a semantic version, with or without a leading v
// ("v1.2.3", "1.2.3-rc.1"); nil when it is not one. Partial versions ("v1",
// "1.2") and dates are not versions: counting them would rank a date tag above
// every release.
func Semver(tag string) *semver.Version {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(tag, "v"))
	if err != nil {
		return nil
	}
	return v
}

// ago renders a duration in days and hours ("41d3h", "5h12m").
func ago(d time.Duration) string {
	d = max(d, 0).Round(time.Minute)
	if d >= 48*time.Hour {
		d = d.Round(time.Hour)
		days := d / (24 * time.Hour)
		h := d % (24 * time.Hour) / time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return d.String()
}

// short renders a configured duration as written: "720h", not "720h0m0s".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
