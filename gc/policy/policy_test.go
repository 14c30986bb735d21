package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/gc/policy"
)

// issueExample is the policy of the retention issue, verbatim.
const issueExample = `policies:
  - repositories: ["team/**", "library/*"]   # globs over repository names; the first matching policy applies
    deleteUntagged: true                     # manifests left untagged in these repositories become garbage
    keepTags:                                # a tag is kept if any entry keeps it
      - patterns: ["^v[0-9]+\\.[0-9]+\\.[0-9]+$"]   # regexes on the tag name; absent = every tag
        mostRecentlyPushedCount: 5           # the 5 most recently pushed of the matching tags
      - patterns: ["^(latest|stable)$"]      # no condition: every matching tag is kept
      - pushedWithin: 720h                   # matching tags pushed within 30 days
      - patterns: ["^v"]
        semverCount: 3                       # the 3 highest semantic versions among the matching tags
`

func parse(t *testing.T, src string) *policy.File {
	t.Helper()
	f, err := policy.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseIssueExample(t *testing.T) {
	f := parse(t, issueExample)
	if len(f.Policies) != 1 {
		t.Fatalf("policies = %d", len(f.Policies))
	}
	p := f.Policies[0]
	if !p.DeleteUntagged || p.AllowEmpty || len(p.KeepTags) != 4 || p.Line != 2 {
		t.Fatalf("policy = %+v", p)
	}
	k := p.KeepTags
	if *k[0].MostRecentlyPushedCount != 5 || k[0].Patterns[0] != `^v[0-9]+\.[0-9]+\.[0-9]+$` || k[0].Line != 5 {
		t.Errorf("keepTags[0] = %+v", k[0])
	}
	if k[1].MostRecentlyPushedCount != nil || k[1].SemverCount != nil || k[1].PushedWithin.Duration != 0 {
		t.Errorf("keepTags[1] has a condition: %+v", k[1])
	}
	if k[2].PushedWithin.Duration != 720*time.Hour || len(k[2].Patterns) != 0 {
		t.Errorf("keepTags[2] = %+v", k[2])
	}
	if *k[3].SemverCount != 3 || k[3].Line != 9 {
		t.Errorf("keepTags[3] = %+v", k[3])
	}
}

// Every mistake is an error that names the file and line, before anything else.
func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown key", "policies:\n  - repositories: [\"**\"]\n    keepTag:\n      - patterns: [x]\n", "policy.yaml: line 3: field keepTag not found"},
		{"unknown key in entry", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - pattern: [x]\n", "line 4: field pattern not found"},
		{"misspelt count", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - mostRecentlyPulledCount: 3\n", "line 4: field mostRecentlyPulledCount not found"},
		{"bad regex", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - patterns: [\"^v[\"]\n", "policy.yaml:4: policies[0].keepTags[0]: pattern \"^v[\""},
		{"bad duration", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - pushedWithin: 30 days\n", "line 4: pushedWithin: duration \"30 days\""},
		{"negative duration", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - pushedWithin: -1h\n", "policy.yaml:4: policies[0].keepTags[0]: pushedWithin"},
		{"count not a number", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - semverCount: three\n", "line 4: cannot unmarshal !!str `three`"},
		{"zero count", "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - mostRecentlyPushedCount: 0\n", "policy.yaml:4: policies[0].keepTags[0]: mostRecentlyPushedCount 0"},
		{"negative semver count", "policies:\n  - repositories: [\"**\"]\n\n    keepTags:\n      - semverCount: -2\n", "policy.yaml:5: policies[0].keepTags[0]: semverCount -2"},
		{"no repositories", "policies:\n  - deleteUntagged: true\n", "policy.yaml:2: policies[0] names no repositories"},
		{"bad glob", "policies:\n  - repositories: [\"team/[a\"]\n", "policy.yaml:2: policies[0]: repositories glob \"team/[a\""},
		{"no policies", "policies: []\n", "policy.yaml:1: no policies"},
		{"empty file", "", "policy.yaml: empty"},
		{"not yaml", "policies: [\n", "policy.yaml: line"},
		{"two documents", "policies:\n  - repositories: [a]\n---\npolicies: []\n", "policy.yaml:3: more than one YAML document"},
		{"zot's repoNames", "policies:\n  - repoNames: [a]\n", "line 2: field repoNames not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse("policy.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("parsed")
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"720h": 720 * time.Hour, "30d": 30 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0d": 0,
	} {
		if got, err := policy.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "d", "1w", "3 days", "1d-", "999999999999d"} {
		if _, err := policy.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestMatchGlobs(t *testing.T) {
	f := parse(t, `policies:
  - repositories: ["team/**", "library/*"]
  - repositories: ["**/cache"]
  - repositories: ["exact"]
`)
	for repo, want := range map[string]int{
		"team/app": 0, "team/app/api": 0, "library/debian": 0, "library/debian/slim": -1, "library": -1,
		"ci/cache": 1, "a/b/cache": 1, "cache": 1, "team/cache": 0, "exact": 2, "exactly": -1, "other/exact": -1,
	} {
		if got := f.Match(repo); got != want {
			t.Errorf("Match(%q) = %d, want %d", repo, got, want)
		}
	}
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func daysAgo(d float64) time.Time { return now.Add(-time.Duration(d * 24 * float64(time.Hour))) }

func tags(spec ...any) []policy.Tag {
	var out []policy.Tag
	for i := 0; i < len(spec); i += 2 {
		t := policy.Tag{Name: spec[i].(string)}
		switch v := spec[i+1].(type) {
		case float64:
			t.PushedAt = daysAgo(v)
		case int:
			t.PushedAt = daysAgo(float64(v))
		case string:
			if v == "unreadable" {
				t.Unreadable = true
			} // "unknown": zero time
		}
		out = append(out, t)
	}
	return out
}

// TestDecide is the table of policy evaluation: which tags go, by glob, pattern,
// count, age and version, over several entries and policies, with the safety rules.
func TestDecide(t *testing.T) {
	const grace = time.Hour
	builds := tags("b1", 10, "b2", 9, "b3", 8, "b4", 7, "b5", 6)
	for _, tc := range []struct {
		name     string
		policy   string
		repo     string
		tags     []policy.Tag
		deleted  []string
		policyIx int
	}{
		{name: "no policy matches: every tag kept", repo: "other/app", tags: builds,
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - mostRecentlyPushedCount: 1\n", policyIx: -1},
		{name: "no keepTags: every tag kept", repo: "team/app", tags: builds,
			policy: "policies:\n  - repositories: [team/*]\n    deleteUntagged: true\n"},
		{name: "most recently pushed", repo: "team/app", tags: builds, deleted: []string{"b1", "b2", "b3"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - mostRecentlyPushedCount: 2\n"},
		{name: "most recently pushed counts among matching tags only", repo: "team/app",
			tags:    tags("v1", 10, "v2", 9, "dev-1", 1, "dev-2", 0.5),
			deleted: []string{"v1", "dev-1", "dev-2"},
			policy:  "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"^v\"]\n        mostRecentlyPushedCount: 1\n"},
		{name: "count larger than the tags", repo: "team/app", tags: builds,
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - mostRecentlyPushedCount: 50\n"},
		{name: "equal push times: the later name counts as newer", repo: "team/app",
			tags: tags("a", 5, "c", 5, "b", 5), deleted: []string{"a", "b"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - mostRecentlyPushedCount: 1\n"},
		{name: "pushed within", repo: "team/app", tags: builds, deleted: []string{"b1", "b2", "b3"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - pushedWithin: 7d12h\n"},
		{name: "patterns without condition keep what they match", repo: "team/app",
			tags: tags("latest", 100, "stable", 100, "latest-old", 100, "v1", 100), deleted: []string{"latest-old", "v1"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"^(latest|stable)$\"]\n"},
		{name: "patterns are unanchored regular expressions", repo: "team/app",
			tags: tags("release-1", 100, "pre-release-2", 100, "dev", 100), deleted: []string{"dev"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"release\"]\n"},
		{name: "several patterns: any matches", repo: "team/app",
			tags: tags("a1", 100, "b1", 100, "c1", 100), deleted: []string{"c1"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"^a\", \"^b\"]\n"},
		{name: "semver: highest versions, pre-releases below their release, non-semver never counted", repo: "team/app",
			tags: tags("v1.2.3", 30, "v1.10.0", 40, "1.10.1-rc.1", 1, "v1.10.1", 50, "v2.0.0-beta.2", 2, "v2.0.0-beta.10", 3,
				"v2", 1, "20241130", 1, "latest", 1, "v1.9", 1),
			deleted: []string{"v1.2.3", "v1.10.0", "1.10.1-rc.1", "v2", "20241130", "latest", "v1.9"},
			policy:  "policies:\n  - repositories: [team/*]\n    keepTags:\n      - semverCount: 3\n"},
		{name: "several conditions in one entry: any keeps", repo: "team/app",
			tags:    tags("v1.0.0", 90, "v1.1.0", 80, "v0.9.0", 1, "v0.1.0", 95),
			deleted: []string{"v0.1.0"},
			policy:  "policies:\n  - repositories: [team/*]\n    keepTags:\n      - semverCount: 2\n        pushedWithin: 7d\n"},
		{name: "the issue's example", repo: "library/app",
			tags: tags("v1.0.0", 100, "v1.1.0", 90, "v1.2.0", 80, "v1.3.0", 70, "v1.4.0", 60, "v1.5.0", 50, "v1.6.0", 40,
				"v2.0.0-rc.1", 45, "latest", 200, "stable", 300, "dev-abc", 10, "dev-def", 50, "feature-x", 35),
			// 5 most recent x.y.z: v1.2.0..v1.6.0; latest, stable; pushed within 30 days: dev-abc;
			// 3 highest semver among ^v: v2.0.0-rc.1, v1.6.0, v1.5.0.
			deleted: []string{"v1.0.0", "v1.1.0", "dev-def", "feature-x"},
			policy:  issueExample},
		{name: "first matching policy applies", repo: "team/app", tags: builds, deleted: []string{"b1", "b2", "b3", "b4"},
			policy: "policies:\n  - repositories: [team/app]\n    keepTags:\n      - mostRecentlyPushedCount: 1\n  - repositories: [\"team/**\"]\n    keepTags:\n      - mostRecentlyPushedCount: 4\n"},
		{name: "a later policy applies when the first does not match", repo: "team/lib", tags: builds, deleted: []string{"b1"}, policyIx: 1,
			policy: "policies:\n  - repositories: [team/app]\n    keepTags:\n      - mostRecentlyPushedCount: 1\n  - repositories: [\"team/**\"]\n    keepTags:\n      - mostRecentlyPushedCount: 4\n"},
		{name: "the last tag stays", repo: "team/app", tags: builds, deleted: []string{"b1", "b2", "b3", "b4"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"^release$\"]\n"},
		{name: "allowEmpty removes every tag", repo: "team/app", tags: builds, deleted: []string{"b1", "b2", "b3", "b4", "b5"},
			policy: "policies:\n  - repositories: [team/*]\n    allowEmpty: true\n    keepTags:\n      - patterns: [\"^release$\"]\n"},
		{name: "grace keeps a young tag", repo: "team/app", tags: tags("old", 10, "young", 0.02), deleted: []string{"old"},
			policy: "policies:\n  - repositories: [team/*]\n    allowEmpty: true\n    keepTags:\n      - patterns: [\"^release$\"]\n"},
		{name: "unknown push time: kept, and not ranked", repo: "team/app",
			tags: tags("a", 10, "b", 9, "c", "unknown"), deleted: []string{"a"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - mostRecentlyPushedCount: 1\n"},
		{name: "unreadable tag: kept, and the repository is not empty", repo: "team/app",
			tags: tags("a", 10, "b", "unreadable"), deleted: []string{"a"},
			policy: "policies:\n  - repositories: [team/*]\n    keepTags:\n      - patterns: [\"^release$\"]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parse(t, tc.policy)
			pi, ds := f.Decide(tc.repo, tc.tags, now, grace)
			if pi != tc.policyIx {
				t.Errorf("policy %d, want %d", pi, tc.policyIx)
			}
			if len(ds) != len(tc.tags) {
				t.Fatalf("%d decisions for %d tags", len(ds), len(tc.tags))
			}
			var got []string
			for i, d := range ds {
				if d.Tag != tc.tags[i].Name {
					t.Errorf("decision %d is for %q, want %q", i, d.Tag, tc.tags[i].Name)
				}
				if d.Rule == "" {
					t.Errorf("%s: no rule given", d.Tag)
				}
				if d.Delete {
					got = append(got, d.Tag)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.deleted))
			if !slices.Equal(got, want) {
				t.Errorf("deleted %v, want %v", got, want)
				for _, d := range ds {
					t.Logf("  %s delete=%v: %s", d.Tag, d.Delete, d.Rule)
				}
			}
		})
	}
}

// The reasons say which entry keeps a tag, and for a deletion why each entry did not.
func TestDecideReasons(t *testing.T) {
	f := parse(t, issueExample)
	_, ds := f.Decide("team/app", tags("feature-x", 35, "v1.0.0", 1, "young", 0.01, "stable", 300), now, time.Hour)
	for _, d := range ds {
		if d.Tag == "feature-x" && strings.Contains(d.Rule, "keepTags[0]") {
			t.Errorf("feature-x: rule %q names an entry whose patterns do not select it", d.Rule)
		}
	}
	g := parse(t, "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - patterns: [\"^v\"]\n        mostRecentlyPushedCount: 1\n      - patterns: [\"^release$\"]\n")
	_, more := g.Decide("team/app", tags("other", 35, "v1", 1), now, time.Hour)
	ds = append(ds, more...)
	want := map[string][]string{
		"feature-x": {"no keepTags entry keeps it: keepTags[2]: pushed 35d ago, not within 720h"},
		"other":     {"no keepTags entry's patterns match it"},
		"v1.0.0":    {"keepTags[0]: among the 5 most recently pushed"},
		"young":     {"keepTags[2]: pushed within 720h"},
		"stable":    {"keepTags[1]: matches ^(latest|stable)$"},
	}
	for _, d := range ds {
		for _, w := range want[d.Tag] {
			if !strings.Contains(d.Rule, w) {
				t.Errorf("%s: rule %q\nwant it to contain %q", d.Tag, d.Rule, w)
			}
		}
	}
	// The safety rules say so.
	f = parse(t, "policies:\n  - repositories: [\"**\"]\n    keepTags:\n      - patterns: [none]\n")
	_, ds = f.Decide("a", tags("young", 0.01, "x", "unknown"), now, time.Hour)
	for _, d := range ds {
		if d.Delete || !d.Safety {
			t.Errorf("%s: %+v, want kept by a safety rule", d.Tag, d)
		}
	}
	if !strings.Contains(ds[0].Rule, "grace") || !strings.Contains(ds[1].Rule, "unknown") {
		t.Errorf("rules %q, %q", ds[0].Rule, ds[1].Rule)
	}
}
