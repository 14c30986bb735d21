// Package policy reads retention policies and decides, per repository, which tags
// they keep. It names its keys as zot does (repositories, deleteUntagged, keepTags,
// patterns, mostRecentlyPushedCount, pushedWithin, semverCount) so that zot users
// recognise them. Deciding deletes nothing: gc plans with the decisions.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"
)

// File is a policy file: the first policy whose repositories match a repository
// applies to it; a repository no policy matches keeps every tag.
type File struct {
	Policies []Policy `yaml:"policies" json:"policies"`
	// Name is where the file was read from, for messages.
	Name string `yaml:"-" json:"file,omitempty"`
}

// Policy is one entry of policies.
type Policy struct {
	// Repositories are globs over repository names ("team/**", "library/*").
	Repositories []string `yaml:"repositories" json:"repositories"`
	// DeleteUntagged makes the manifests left untagged in these repositories
	// garbage (regsweep gc -m, here only).
	DeleteUntagged bool `yaml:"deleteUntagged" json:"deleteUntagged,omitempty"`
	// KeepTags keeps a tag if any entry keeps it. Without entries every tag is kept.
	KeepTags []Keep `yaml:"keepTags" json:"keepTags,omitempty"`
	// AllowEmpty lets the policy remove every tag of a repository; without it the
	// most recently pushed tag stays.
	AllowEmpty bool `yaml:"allowEmpty" json:"allowEmpty,omitempty"`
	// Line is where the policy starts in its file.
	Line int `yaml:"-" json:"line,omitempty"`
}

// Keep is one keepTags entry. It selects the tags its patterns match (all when it
// has none) and keeps those that meet any of its conditions; with no condition,
// every tag it selects.
type Keep struct {
	Patterns                []string `yaml:"patterns" json:"patterns,omitempty"`
	MostRecentlyPushedCount *int     `yaml:"mostRecentlyPushedCount" json:"mostRecentlyPushedCount,omitempty"`
	PushedWithin            Duration `yaml:"pushedWithin" json:"pushedWithin,omitzero"`
	SemverCount             *int     `yaml:"semverCount" json:"semverCount,omitempty"`
	Line                    int      `yaml:"-" json:"line,omitempty"`

	re []*regexp.Regexp
}

// Duration is a Go duration ("720h", "90m") or a whole number of days ("30d",
// also "1d12h").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler (yaml and JSON).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	d.Duration = v
	return err
}

// UnmarshalYAML implements yaml.Unmarshaler, naming the line of a bad value.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: pushedWithin wants a duration such as 720h or 30d", n.Line)
	}
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: pushedWithin: %v", n.Line, err)
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// IsZero lets JSON omit an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

var daysRE = regexp.MustCompile(`^([0-9]+)d(.*)$`)

// ParseDuration parses a Go duration, optionally led by whole days ("30d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("duration %q: too many days", s)
		}
		days, s = time.Duration(n)*24*time.Hour, m[2]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration such as 720h or a number of days such as 30d", s)
	}
	return days + v, nil
}

// ErrInvalid is wrapped by every error about a policy file's content.
var ErrInvalid = errors.New("invalid retention policy")

// Load reads and checks the policy file name.
func Load(name string) (*File, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	f, err := Parse(name, b)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Parse reads a policy file's content and checks every key, glob, regular
// expression, count and duration; errors name the line.
func Parse(name string, b []byte) (*File, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s: %w", name, line, fmt.Sprintf(format, args...), ErrInvalid)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty: %w", name, ErrInvalid)
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg = strings.Join(te.Errors, "; ")
		}
		return nil, fmt.Errorf("%s: %s: %w", name, msg, ErrInvalid)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, bad(extra.Line, "more than one YAML document")
	}
	if err := setLines(&f, b); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
	}
	f.Name = name
	if len(f.Policies) == 0 {
		return nil, bad(1, "no policies: a policy file lists at least one under policies:")
	}
	for i := range f.Policies {
		p := &f.Policies[i]
		if len(p.Repositories) == 0 {
			return nil, bad(p.Line, "policies[%d] names no repositories (use [\"**\"] for every repository)", i)
		}
		for _, g := range p.Repositories {
			if g == "" || !doublestar.ValidatePattern(g) {
				return nil, bad(p.Line, "policies[%d]: repositories glob %q is not valid", i, g)
			}
		}
		for j := range p.KeepTags {
			k := &p.KeepTags[j]
			where := fmt.Sprintf("policies[%d].keepTags[%d]", i, j)
			for _, pat := range k.Patterns {
				re, err := regexp.Compile(pat)
				if err != nil {
					return nil, bad(k.Line, "%s: pattern %q: %v", where, pat, err)
				}
				k.re = append(k.re, re)
			}
			if c := k.MostRecentlyPushedCount; c != nil && *c < 1 {
				return nil, bad(k.Line, "%s: mostRecentlyPushedCount %d: want at least 1 (an entry with no condition keeps every tag it matches)", where, *c)
			}
			if c := k.SemverCount; c != nil && *c < 1 {
				return nil, bad(k.Line, "%s: semverCount %d: want at least 1", where, *c)
			}
			if k.PushedWithin.Duration < 0 {
				return nil, bad(k.Line, "%s: pushedWithin %v: want more than 0", where, k.PushedWithin.Duration)
			}
		}
	}
	return &f, nil
}

// setLines records where each policy and keepTags entry starts, for messages. The
// decoder has already checked the shape.
func setLines(f *File, b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	pols := mapValue(doc.Content[0], "policies")
	if pols == nil {
		return nil
	}
	for i, pn := range pols.Content {
		if i >= len(f.Policies) {
			break
		}
		f.Policies[i].Line = pn.Line
		kn := mapValue(pn, "keepTags")
		if kn == nil {
			continue
		}
		for j, en := range kn.Content {
			if j < len(f.Policies[i].KeepTags) {
				f.Policies[i].KeepTags[j].Line = en.Line
			}
		}
	}
	return nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// compile makes sure the patterns of a File built in code (or decoded from JSON,
// as a plan carries it) are compiled.
func (f *File) compile() error {
	for i := range f.Policies {
		for j := range f.Policies[i].KeepTags {
			k := &f.Policies[i].KeepTags[j]
			if len(k.re) == len(k.Patterns) {
				continue
			}
			k.re = k.re[:0]
			for _, pat := range k.Patterns {
				re, err := regexp.Compile(pat)
				if err != nil {
					return fmt.Errorf("policies[%d].keepTags[%d]: pattern %q: %v: %w", i, j, pat, err, ErrInvalid)
				}
				k.re = append(k.re, re)
			}
		}
	}
	return nil
}

// Match returns the index of the first policy whose globs match repo, or -1.
func (f *File) Match(repo string) int {
	for i, p := range f.Policies {
		for _, g := range p.Repositories {
			if ok, _ := doublestar.Match(g, repo); ok {
				return i
			}
		}
	}
	return -1
}

// PolicyName names policy i for reports: "policies[0] (team/**, library/*)".
func (f *File) PolicyName(i int) string {
	if i < 0 || i >= len(f.Policies) {
		return "no policy"
	}
	return fmt.Sprintf("policies[%d] (%s)", i, strings.Join(f.Policies[i].Repositories, ", "))
}
