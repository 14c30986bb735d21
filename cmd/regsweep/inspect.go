package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/graph"
)

type inspectOptions struct {
	storageFlags
	scopeFlags
	output      string
	grace       time.Duration
	maxIndexAge time.Duration
}

func newInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [CONFIG] REPOSITORY:TAG|REPOSITORY@DIGEST|DIGEST|:TAG",
		Short: "Show the stored digest behind a tag, what deleting it removes, and what GC would do",
		Long: `inspect shows one manifest as the storage holds it: its digest and media type (the digest
a DELETE /v2/<repository>/manifests/<digest> must use: a client that does not accept
this media type may be served another manifest, with another digest, by the registry),
for an index its platforms and their digests, every tag of the repository naming the
same digest (deleting the digest removes them all), other repositories linking it, its
referrers (signatures, SBOMs), its bytes (total; unique: what deleting it and running
gc -m frees; shared), its push time, and whether GC would keep it in each mode.

A bare DIGEST (or @DIGEST) inspects it in every repository with a revision link for
it, and :TAG that tag in every repository having it; --repo GLOB (repeatable) limits
which. JSON is then a list, one object per repository.

It reads the storage CONFIG names (scanning it, or reusing an index younger than
--max-index-age), or with --index DIR and no CONFIG, an index regsweep scan filled.

Exit codes: 0 success, 1 error, 2 usage (unknown repository, tag or digest included).`,
		Example: `  regsweep inspect /etc/docker/registry/config.yml team/app:v1.2.0
  regsweep inspect --index /var/tmp/regsweep team/app@sha256:4b7e54fd… -o json
  regsweep inspect CONFIG sha256:4b7e54fd…                   # every repository holding it
  regsweep inspect CONFIG :latest --repo 'team/*'             # latest of every team repository`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.storageFlags.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			if err := o.scopeFlags.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			if o.output != "text" && o.output != "json" {
				return &codeError{exitUsage, fmt.Errorf("--output %q: want text or json", o.output)}
			}
			if len(args) == 1 && o.indexDir == "" {
				return &codeError{exitUsage, errors.New("give the registry's CONFIG, or --index DIR of an index regsweep scan filled")}
			}
			repo, ref, err := parseRef(args[len(args)-1])
			if err != nil {
				return &codeError{exitUsage, err}
			}
			if repo != "" && !o.matcher.Match(repo) {
				return &codeError{exitUsage, fmt.Errorf("%s is not matched by --repo %s", repo, strings.Join(o.repos, " --repo "))}
			}
			config := ""
			if len(args) == 2 {
				config = args[0]
			}
			return runInspect(cmd, config, repo, ref, o)
		},
	}
	o.storageFlags.bind(cmd, "directory of the on-disk index (without CONFIG: an index regsweep scan filled)")
	o.scopeFlags.bind(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.DurationVar(&o.grace, "grace", time.Hour, "for the GC verdicts: keep anything modified less than this before the scan")
	f.DurationVar(&o.maxIndexAge, "max-index-age", 0, "with CONFIG, reuse the index if a scan finished less than this long ago")
	return cmd
}

// parseRef splits REPOSITORY:TAG or REPOSITORY@DIGEST; repo is empty for DIGEST,
// @DIGEST and :TAG.
func parseRef(s string) (repo, ref string, err error) {
	if _, err := digest.Parse(s); err == nil {
		return "", s, nil
	}
	if r, d, ok := strings.Cut(s, "@"); ok {
		if _, err := digest.Parse(d); err != nil {
			return "", "", fmt.Errorf("%q: want REPOSITORY@DIGEST with a digest such as sha256:<64 hex> (%v)", s, err)
		}
		return r, d, nil
	}
	i := strings.LastIndex(s, ":")
	if i < 0 || i == len(s)-1 || strings.Contains(s[i:], "/") {
		return "", "", fmt.Errorf("%q: want REPOSITORY:TAG or REPOSITORY@DIGEST", s)
	}
	return s[:i], s[i+1:], nil
}

func runInspect(cmd *cobra.Command, config, repo, ref string, o inspectOptions) error {
	ctx := cmd.Context()
	var (
		g    *graph.Graph
		now  time.Time
		done = func() {}
	)
	if config != "" {
		s, err := openSession(cmd, config, o.storageFlags, false, true)
		if err != nil {
			return err
		}
		defer s.close()
		s.tagTimes = true // push times
		if err := s.scanUnlessFresh(cmd, o.storageFlags, true, o.maxIndexAge); err != nil {
			return err
		}
		if g, err = graph.Load(ctx, s.idx); err != nil {
			return indexError(s.dir, err)
		}
		meta, _ := s.idx.Meta()
		now = meta.Started
	} else {
		idx, meta, err := openIndex(o.indexDir)
		if err != nil {
			return err
		}
		done = func() { idx.Close() }
		if g, err = graph.Load(ctx, idx); err != nil {
			done()
			return indexError(o.indexDir, err)
		}
		now = meta.Started
	}
	defer done()
	def, untagged, err := inspectPlans(ctx, g, now, o.grace)
	if err != nil {
		return err
	}
	refs := []analysis.RepoRef{{Repository: repo, Reference: ref}}
	if repo == "" {
		if refs = analysis.FindRefs(g, ref, o.matcher); len(refs) == 0 {
			where := "no repository"
			if !o.matcher.All() {
				where += " matching --repo " + strings.Join(o.repos, " --repo ")
			}
			return &codeError{exitUsage, fmt.Errorf("%w: %s holds %s", analysis.ErrNoSuchReference, where, ref)}
		}
	}
	var all []*analysis.Inspection
	for _, r := range refs {
		in, err := analysis.Inspect(ctx, def, untagged, r.Repository, r.Reference)
		if errors.Is(err, analysis.ErrNoSuchReference) {
			return &codeError{exitUsage, err}
		}
		if err != nil {
			return err
		}
		all = append(all, in)
	}
	out := cmd.OutOrStdout()
	if repo == "" && o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for i, in := range all {
		if i > 0 {
			fmt.Fprintln(out)
		}
		if err := writeInspection(out, in, o.output); err != nil {
			return err
		}
	}
	return nil
}

// inspectPlans plans the graph in both modes, for the verdicts.
func inspectPlans(ctx context.Context, g *graph.Graph, now time.Time, grace time.Duration) (def, untagged *gc.Plan, err error) {
	plan := func(m bool) (*gc.Plan, error) {
		return gc.NewPlan(ctx, g, gc.WithDeleteUntagged(m), gc.WithGracePeriod(grace), gc.WithNow(now), gc.WithAllowMassDelete(true))
	}
	if def, err = plan(false); err != nil {
		return nil, nil, err
	}
	if untagged, err = plan(true); err != nil {
		return nil, nil, err
	}
	return def, untagged, nil
}

func writeInspection(w io.Writer, in *analysis.Inspection, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	sep := ":"
	if strings.Contains(in.Reference, ":") && strings.HasPrefix(in.Reference, "sha") {
		sep = "@"
	}
	fmt.Fprintf(w, "%s%s%s\n", in.Repository, sep, in.Reference)
	fmt.Fprintf(w, "  digest:      %s\n", in.Digest)
	fmt.Fprintf(w, "               delete with DELETE /v2/%s/manifests/%s (the stored digest, whatever a client's Accept header)\n", in.Repository, in.Digest)
	what := in.MediaType
	if n := len(in.Platforms); n > 0 {
		what += fmt.Sprintf(" (an index of %d manifests)", n)
	}
	if in.ArtifactType != "" {
		what += ", artifact " + in.ArtifactType
	}
	fmt.Fprintf(w, "  media type:  %s, %s\n", what, ib(in.Size))
	if !in.PushedAt.IsZero() {
		fmt.Fprintf(w, "  pushed:      %s\n", in.PushedAt.UTC().Format(time.RFC3339))
	}
	switch len(in.Tags) {
	case 0:
		fmt.Fprintf(w, "  tags:        none in %s\n", in.Repository)
	case 1:
		fmt.Fprintf(w, "  tags:        %s: deleting the digest removes this tag\n", in.Tags[0])
	default:
		fmt.Fprintf(w, "  tags:        %s: deleting the digest removes all %d of them\n", strings.Join(in.Tags, ", "), len(in.Tags))
	}
	if len(in.OtherRepositories) > 0 {
		fmt.Fprintf(w, "  also in:     %s (a delete here leaves it there)\n", strings.Join(in.OtherRepositories, ", "))
	}
	if len(in.Platforms) > 0 {
		fmt.Fprintf(w, "  platforms:\n")
		for _, p := range in.Platforms {
			fmt.Fprintf(w, "    %-16s %s  %s  %s\n", orDash(p.Platform), p.Digest, p.MediaType, ib(p.Bytes))
		}
	}
	if len(in.Referrers) > 0 {
		fmt.Fprintf(w, "  referrers:\n")
		for _, r := range in.Referrers {
			fmt.Fprintf(w, "    %s  %s  %s  in %s\n", r.Digest, orDash(r.ArtifactType), ib(r.Size), strings.Join(r.Repositories, ", "))
		}
	}
	b := in.Bytes
	fmt.Fprintf(w, "  bytes:       %s in %s; unique %s in %s (what deleting it and gc -m free); shared %s\n",
		ib(b.Total), nBlobs(b.Blobs), ib(b.Unique), nBlobs(b.UniqueBlobs), ib(b.Shared))
	for _, v := range in.GC {
		fmt.Fprintf(w, "  gc %-16s %s\n", v.Mode+":", v.Why)
	}
	if len(in.Missing) > 0 {
		fmt.Fprintf(w, "  missing:     %s (a pull fails; see regsweep verify)\n", strings.Join(in.Missing, ", "))
	}
	if in.Unreadable != "" {
		fmt.Fprintf(w, "  unreadable:  %s\n", in.Unreadable)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
