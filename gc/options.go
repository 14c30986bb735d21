package gc

import (
	"fmt"
	"strings"
	"time"

	"github.com/regsweep/regsweep/gc/policy"
)

type options struct {
	deleteUntagged  bool
	keepReferrers   bool
	grace           time.Duration
	uploadAge       time.Duration
	now             time.Time
	only            map[string]bool
	withoutTags     map[string]bool // "repo:tag"
	withoutRepos    map[string]bool
	allowMassDelete bool
	pruneRepos      bool
	policy          *policy.File
	onlyTags        map[string]TagItem // by path, from the plan being applied
	untaggedIn      map[string]bool    // repositories whose policy says deleteUntagged
	spillDir        string
}

// untagged reports whether manifests left untagged in repo are garbage: everywhere
// with WithDeleteUntagged, and where a policy says deleteUntagged.
func (o options) untagged(repo string) bool { return o.deleteUntagged || o.untaggedIn[repo] }

// anyUntagged reports whether some repository treats untagged manifests as garbage.
func (o options) anyUntagged() bool { return o.deleteUntagged || len(o.untaggedIn) > 0 }

// Option tunes NewPlan.
type Option func(*options) error

// WithDeleteUntagged makes tags the roots (registry garbage-collect -m): manifests
// no tag, live index or live subject reaches are deleted.
func WithDeleteUntagged(v bool) Option {
	return func(o *options) error { o.deleteUntagged = v; return nil }
}

// WithKeepReferrers keeps untagged referrers (signatures, SBOMs) of live manifests
// under delete-untagged. On by default; distribution's GC drops them.
func WithKeepReferrers(v bool) Option {
	return func(o *options) error { o.keepReferrers = v; return nil }
}

// WithGracePeriod keeps anything modified after now - d (default 1h).
func WithGracePeriod(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("grace period must not be negative, got %v", d)
		}
		o.grace = d
		return nil
	}
}

// WithUploadAge deletes uploads started before now - d (default 168h, as distribution).
func WithUploadAge(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("upload age must be positive, got %v", d)
		}
		o.uploadAge = d
		return nil
	}
}

// WithNow sets the time the run counts from (default: time.Now()).
func WithNow(t time.Time) Option {
	return func(o *options) error { o.now = t; return nil }
}

// WithPruneEmptyRepositories also plans the removal of repository directories the
// plan leaves with no tag, revision, tag history, layer link or upload.
func WithPruneEmptyRepositories(v bool) Option {
	return func(o *options) error { o.pruneRepos = v; return nil }
}

// WithAllowMassDelete plans even storage that looks incomplete (ErrIncompleteStorage).
func WithAllowMassDelete(v bool) Option {
	return func(o *options) error { o.allowMassDelete = v; return nil }
}

// WithOnly restricts the plan to what an earlier plan named: applying a plan re-marks
// the registry as it is now and deletes only what both plans agree on. A tag the
// earlier plan deletes is deleted only if it still names the same manifest and has
// not been pushed since.
func WithOnly(earlier *Plan) Option {
	return func(o *options) error {
		o.only = earlier.Paths()
		o.onlyTags = map[string]TagItem{}
		for _, t := range earlier.Tags {
			o.onlyTags[t.Path] = t
		}
		return nil
	}
}

// WithPolicy applies retention policies (package policy): the plan deletes the tags
// they do not keep, before anything else, and in the repositories of a policy that
// says deleteUntagged the manifests left untagged are garbage.
func WithPolicy(f *policy.File) Option {
	return func(o *options) error { o.policy = f; return nil }
}

// WithoutTags plans as if the tags ("repo:tag") were deleted: a what-if.
func WithoutTags(refs ...string) Option {
	return func(o *options) error {
		if o.withoutTags == nil {
			o.withoutTags = map[string]bool{}
		}
		for _, r := range refs {
			i := strings.LastIndex(r, ":")
			if i <= 0 || i == len(r)-1 || strings.Contains(r[i:], "/") {
				return fmt.Errorf("what-if tag %q: want REPOSITORY:TAG", r)
			}
			o.withoutTags[r] = true
		}
		return nil
	}
}

// WithoutRepos plans as if the repositories were deleted: a what-if.
func WithoutRepos(names ...string) Option {
	return func(o *options) error {
		if o.withoutRepos == nil {
			o.withoutRepos = map[string]bool{}
		}
		for _, n := range names {
			o.withoutRepos[n] = true
		}
		return nil
	}
}

// cutoff is the time grace counts back to: what was modified after it is young.
func (o options) cutoff() time.Time { return o.now.Add(-o.grace) }

func makeOptions(opts []Option) (options, error) {
	o := options{keepReferrers: true, grace: time.Hour, uploadAge: 168 * time.Hour}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	return o, nil
}
