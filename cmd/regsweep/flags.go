package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/storage"
)

// markFlags are what decides what is live: gc, report and graph bind them, apply
// reads them from its plan; each is checked here, once.
type markFlags struct {
	deleteUntagged   bool
	dropReferrers    bool
	grace, uploadAge time.Duration
	policyFile       string
	policy           *policy.File // read by verify
	pruneRepos       bool
}

// bind adds the flags; what says how a command uses them ("delete" or "count as
// garbage").
func (m *markFlags) bind(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.BoolVarP(&m.deleteUntagged, "delete-untagged", "m", false, "tags are the roots: "+what+" manifests that no tag, live index or live subject reaches")
	f.BoolVar(&m.dropReferrers, "delete-untagged-referrers", false, "with -m, also "+what+" untagged referrers (signatures, SBOMs) of live manifests, as distribution does")
	f.DurationVar(&m.grace, "grace", time.Hour, "keep anything modified less than this before the run (before the scan, for an index)")
	f.DurationVar(&m.uploadAge, "upload-age", 168*time.Hour, what+" uploads started longer ago than this")
	f.BoolVar(&m.pruneRepos, "prune-empty-repositories", false, what+" the directories of repositories left with no tag, revision, tag history, layer link or upload, last")
	f.StringVar(&m.policyFile, "policy", "", "retention policy file (YAML): "+what+" the tags it does not keep, and in repositories whose policy says deleteUntagged the manifests left untagged")
}

// verify checks the flags and reads the policy file: a mistake in it is a usage
// error naming its line, before anything is read from storage.
func (m *markFlags) verify() error {
	if m.dropReferrers && !m.deleteUntagged && m.policyFile == "" {
		return fmt.Errorf("--delete-untagged-referrers needs --delete-untagged or a --policy")
	}
	if m.grace < 0 {
		return fmt.Errorf("--grace %v: want 0 or more", m.grace)
	}
	if m.uploadAge <= 0 {
		return fmt.Errorf("--upload-age %v: want more than 0", m.uploadAge)
	}
	if m.policyFile != "" {
		p, err := policy.Load(m.policyFile)
		if err != nil {
			return err
		}
		m.policy = p
	}
	return nil
}

// options plans with the flags, counting grace and upload age back from now.
func (m markFlags) options(now time.Time) []gc.Option {
	opts := []gc.Option{
		gc.WithDeleteUntagged(m.deleteUntagged), gc.WithKeepReferrers(!m.dropReferrers),
		gc.WithGracePeriod(m.grace), gc.WithUploadAge(m.uploadAge), gc.WithNow(now),
		gc.WithPruneEmptyRepositories(m.pruneRepos),
	}
	if m.policy != nil {
		opts = append(opts, gc.WithPolicy(m.policy))
	}
	return opts
}

// modeFlags are the flags a plan was made with.
func modeFlags(mode gc.Mode) markFlags {
	return markFlags{
		deleteUntagged: mode.DeleteUntagged, dropReferrers: !mode.KeepReferrers,
		grace: time.Duration(mode.GraceSeconds) * time.Second, uploadAge: time.Duration(mode.UploadAgeSeconds) * time.Second,
		policy: mode.Policy, pruneRepos: mode.PruneEmptyRepositories,
	}
}

// storageFlags are those of the commands that scan storage into an index.
type storageFlags struct {
	indexDir       string
	workers        int
	quiet          bool
	verifyLinks    bool
	requestTimeout time.Duration
	noCache        bool
}

func (s *storageFlags) bind(cmd *cobra.Command, indexHelp string) {
	f := cmd.Flags()
	f.StringVar(&s.indexDir, "index", "", indexHelp)
	f.IntVar(&s.workers, "workers", 0, fmt.Sprintf("the most storage operations in flight (0: %d on a filesystem; on object stores from %d, adapting up to %d and halving when the store throttles)", storage.LocalWorkers, storage.ObjectStoreStart, storage.ObjectStoreMax))
	f.BoolVarP(&s.quiet, "quiet", "q", false, "log only warnings and errors")
	f.BoolVar(&s.verifyLinks, "verify-links", false, "read every revision and layer link and check it against its path (one more read per link)")
	f.DurationVar(&s.requestTimeout, "request-timeout", 30*time.Second, "object stores: give up on a request after this long without an answer and try again (5 tries, with backoff)")
	f.BoolVar(&s.noCache, "no-manifest-cache", false, "read every manifest again instead of reusing the parses the index keeps of manifest blobs unchanged (same size and time) since an earlier run")
}

func (s storageFlags) verify() error {
	if s.workers < 0 {
		return fmt.Errorf("--workers %d: want 0 (automatic) or more", s.workers)
	}
	if s.requestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %v: want more than 0", s.requestTimeout)
	}
	return nil
}

// scopeFlags narrow what a report shows to some repositories. They never narrow
// marking: every repository's roots keep what they reach.
type scopeFlags struct {
	repos   []string
	matcher *analysis.RepoMatcher
}

func (s *scopeFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&s.repos, "repo", nil, `GLOB: show only repositories matching it ("team/*", "**/cache"; repeatable); what is live is still decided over all of them`)
}

func (s *scopeFlags) verify() error {
	m, err := analysis.NewRepoMatcher(s.repos)
	if err != nil {
		return fmt.Errorf("--repo: %w", err)
	}
	s.matcher = m
	return nil
}

// narrow applies the scope to a report of plan p.
func (s *scopeFlags) narrow(r *analysis.Report, p *gc.Plan) (*analysis.Report, error) {
	return analysis.Narrow(r, p, s.matcher)
}
