package gc

import (
	"fmt"
	"strings"
	"time"
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
}

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

// WithAllowMassDelete plans even storage that looks incomplete (ErrIncompleteStorage).
func WithAllowMassDelete(v bool) Option {
	return func(o *options) error { o.allowMassDelete = v; return nil }
}

// WithOnly restricts the plan to what an earlier plan named: applying a plan re-marks
// the registry as it is now and deletes only what both plans agree on.
func WithOnly(earlier *Plan) Option {
	return func(o *options) error { o.only = earlier.Paths(); return nil }
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
