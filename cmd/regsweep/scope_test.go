package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc/analysis"
)

type scopedReport struct {
	analysis.Report
	Capacity *analysis.Capacity `json:"capacity"`
}

func decodeScoped(t *testing.T, out string) scopedReport {
	t.Helper()
	var r scopedReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

// --repo narrows what a dry run lists, never what it decides: the summary is the
// whole storage's, every listed item is in scope, and two scopes covering every
// repository list everything the unscoped run lists, but the blobs no repository
// links.
func TestRepoScopeDryRun(t *testing.T) {
	cfg := sampleConfig(t)
	idx := t.TempDir()
	dry := func(extra ...string) scopedReport {
		return decodeScoped(t, mustRun(t, append([]string{"gc", cfg, "-d", "-m", "-o", "json", "-q", "--index", idx}, extra...)...))
	}
	full := dry()
	team := dry("--repo", "team/**")
	lib := dry("--repo", "library/*")
	if full.Scope != nil || team.Scope == nil || lib.Scope == nil {
		t.Fatalf("scope objects: full %v, team %v, library %v", full.Scope, team.Scope, lib.Scope)
	}
	if team.Summary != full.Summary {
		t.Errorf("the scope changed the summary:\n%+v\n%+v", team.Summary, full.Summary)
	}
	for _, r := range []scopedReport{team, lib} {
		prefix := strings.TrimSuffix(strings.TrimSuffix(r.Scope.Globs[0], "**"), "*")
		for _, x := range r.Repositories {
			if !strings.HasPrefix(x.Name, prefix) {
				t.Errorf("--repo %s lists repository %s", r.Scope.Globs[0], x.Name)
			}
		}
		for _, x := range r.Delete.Manifests {
			if !strings.HasPrefix(x.Repository, prefix) {
				t.Errorf("--repo %s lists revision %s", r.Scope.Globs[0], x.Path)
			}
		}
		for _, x := range r.Delete.LayerLinks {
			if !strings.HasPrefix(x.Repository, prefix) {
				t.Errorf("--repo %s lists layer link %s", r.Scope.Globs[0], x.Path)
			}
		}
		for _, x := range r.Delete.Uploads {
			if !strings.HasPrefix(x.Repository, prefix) {
				t.Errorf("--repo %s lists upload %s", r.Scope.Globs[0], x.Path)
			}
		}
		s := r.Scope
		if got := s.DeleteBlobs + s.SharedDeleteBlobs + s.UnlinkedDeleteBlobs + s.DeleteBlobsOutOfScope; got != full.Summary.DeleteBlobs {
			t.Errorf("--repo %s: %d+%d+%d+%d blobs, the plan deletes %d", s.Globs[0], s.DeleteBlobs, s.SharedDeleteBlobs, s.UnlinkedDeleteBlobs, s.DeleteBlobsOutOfScope, full.Summary.DeleteBlobs)
		}
		if len(r.Delete.Blobs) != s.DeleteBlobs+s.SharedDeleteBlobs {
			t.Errorf("--repo %s lists %d blobs, scope says %d+%d", s.Globs[0], len(r.Delete.Blobs), s.DeleteBlobs, s.SharedDeleteBlobs)
		}
	}
	// Together the scopes list every item with a repository, and every linked blob.
	if n := len(team.Delete.Manifests) + len(lib.Delete.Manifests); n != len(full.Delete.Manifests) {
		t.Errorf("revisions: %d in the scopes, %d in all", n, len(full.Delete.Manifests))
	}
	if n := len(team.Delete.LayerLinks) + len(lib.Delete.LayerLinks); n != len(full.Delete.LayerLinks) {
		t.Errorf("layer links: %d in the scopes, %d in all", n, len(full.Delete.LayerLinks))
	}
	if n := len(team.Repositories) + len(lib.Repositories); n != len(full.Repositories) {
		t.Errorf("repositories: %d in the scopes, %d in all", n, len(full.Repositories))
	}
	linked := map[digest.Digest]bool{}
	for _, l := range full.Delete.LayerLinks {
		linked[l.Digest] = true
	}
	for _, m := range full.Delete.Manifests {
		linked[m.Digest] = true
	}
	listed := map[digest.Digest]bool{}
	for _, r := range []scopedReport{team, lib} {
		for _, b := range r.Delete.Blobs {
			listed[b.Digest()] = true
		}
	}
	unlinked := 0
	for _, b := range full.Delete.Blobs {
		if linked[b.Digest()] != listed[b.Digest()] {
			t.Errorf("blob %s: linked by a repository %v, listed by a scope %v", b.Digest(), linked[b.Digest()], listed[b.Digest()])
		}
		if !linked[b.Digest()] {
			unlinked++
		}
	}
	if unlinked != team.Scope.UnlinkedDeleteBlobs || unlinked == 0 {
		t.Errorf("%d garbage blobs no repository links, scope says %d (the sample has some)", unlinked, team.Scope.UnlinkedDeleteBlobs)
	}
	// Bytes: the repositories' distinct live bytes, as the namespace roll-up counts them.
	rep := decodeScoped(t, mustRun(t, "report", "--index", idx, "-m", "-o", "json"))
	for _, ns := range rep.Capacity.Namespaces {
		if ns.Name == "team/*" && (ns.Bytes != team.Scope.Bytes || ns.UniqueBytes != team.Scope.UniqueBytes) {
			t.Errorf("team/*: %d bytes, %d unique; the scope says %d, %d", ns.Bytes, ns.UniqueBytes, team.Scope.Bytes, team.Scope.UniqueBytes)
		}
	}
	text := mustRun(t, "gc", cfg, "-d", "-m", "-q", "--index", idx, "--repo", "team/**")
	if !strings.Contains(text, "Scope:    --repo team/**: 2 repositories of 3") || strings.Contains(text, "library/debian") {
		t.Errorf("text report:\n%s", text)
	}
}

// --repo is for reports: a sweep or a plan file is always the whole storage's.
func TestRepoScopeRefused(t *testing.T) {
	cfg := sampleConfig(t)
	for _, args := range [][]string{
		{"gc", cfg, "-m", "--repo", "team/*"},
		{"gc", cfg, "-d", "--repo", "team/*", "--plan-out", filepath.Join(t.TempDir(), "p.json")},
		{"gc", cfg, "-d", "--repo", "team/[a"},
		{"report", "--index", t.TempDir(), "--repo", ""},
		{"inspect", cfg, "library/debian:12", "--repo", "team/*"},
	} {
		if _, err := run(t, args...); exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}

// report --repo keeps the scope's repositories, tags and namespaces; its metrics
// stay the whole storage's.
func TestRepoScopeReport(t *testing.T) {
	cfg := sampleConfig(t)
	idx := t.TempDir()
	mustRun(t, "scan", cfg, "--index", idx, "-q")
	dir := t.TempDir()
	full := decodeScoped(t, mustRun(t, "report", "--index", idx, "-o", "json", "--metrics-file", filepath.Join(dir, "full.prom")))
	team := decodeScoped(t, mustRun(t, "report", "--index", idx, "-o", "json", "--repo", "team/**", "--metrics-file", filepath.Join(dir, "team.prom")))
	for _, r := range team.Capacity.Repositories {
		if !strings.HasPrefix(r.Name, "team/") {
			t.Errorf("repository %s in a team/** report", r.Name)
		}
	}
	for _, x := range team.Capacity.Tags {
		if !strings.HasPrefix(x.Repository, "team/") {
			t.Errorf("tag %s:%s in a team/** report", x.Repository, x.Tag)
		}
	}
	if len(team.Capacity.Namespaces) != 1 || team.Capacity.Namespaces[0].Name != "team/*" {
		t.Errorf("namespaces %+v", team.Capacity.Namespaces)
	}
	if len(team.Capacity.Repositories) != 2 || len(full.Capacity.Repositories) != 3 || team.Capacity.TotalBytes != full.Capacity.TotalBytes {
		t.Errorf("team: %d repositories of %d; total bytes %d vs %d", len(team.Capacity.Repositories), len(full.Capacity.Repositories), team.Capacity.TotalBytes, full.Capacity.TotalBytes)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "full.prom"))
	b, _ := os.ReadFile(filepath.Join(dir, "team.prom"))
	strip := func(b []byte) string { // the run's duration and time differ
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "duration") && !strings.Contains(l, "last_success") && !strings.Contains(l, "timestamp") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(a) != strip(b) || !strings.Contains(string(b), `repository="library/debian"`) {
		t.Errorf("metrics differ with --repo:\n%s\n---\n%s", a, b)
	}
}

// inspect with a bare digest, or :TAG, looks in every repository (--repo narrows).
func TestInspectAcrossRepositories(t *testing.T) {
	cfg := sampleConfig(t)
	idx := t.TempDir()
	mustRun(t, "scan", cfg, "--index", idx, "-q")
	one := decodeInspection(t, mustRun(t, "inspect", "--index", idx, "team/app/web:latest", "-o", "json"))
	var all []analysis.Inspection
	out := mustRun(t, "inspect", "--index", idx, one.Digest.String(), "-o", "json")
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("not a JSON list: %v\n%s", err, out)
	}
	var repos []string
	for _, in := range all {
		if in.Digest != one.Digest {
			t.Errorf("%s: digest %s, want %s", in.Repository, in.Digest, one.Digest)
		}
		repos = append(repos, in.Repository)
	}
	want := append([]string{"team/app/web"}, one.OtherRepositories...)
	slices.Sort(want)
	if !slices.Equal(repos, want) {
		t.Errorf("bare digest found in %v, want %v (the repository and its other_repositories)", repos, want)
	}
	out = mustRun(t, "inspect", "--index", idx, ":latest", "--repo", "team/**", "-o", "json")
	all = nil
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) == 0 {
		t.Fatalf(":latest: %v\n%s", err, out)
	}
	for _, in := range all {
		if !strings.HasPrefix(in.Repository, "team/") || !slices.Contains(in.Tags, "latest") {
			t.Errorf(":latest --repo team/** gave %s with tags %v", in.Repository, in.Tags)
		}
	}
	if _, err := run(t, "inspect", "--index", idx, ":latest", "--repo", "nothing/*"); exitCode(err) != exitUsage {
		t.Errorf("no repository matches: exit %d (%v), want 2", exitCode(err), err)
	}
}

// gc --prune-empty-repositories from the command line: a repository whose tags
// were all deleted goes, the check after the sweep passes, and the plan, the report
// and the result agree.
func TestPruneEmptyRepositoriesCLI(t *testing.T) {
	cfg := sampleConfig(t)
	root := regRoot(t, cfg)
	repo := filepath.Join(root, "docker/registry/v2/repositories/library/debian")
	if err := os.RemoveAll(filepath.Join(repo, "_manifests/tags")); err != nil {
		t.Fatal(err)
	}
	dry := decodeScoped(t, mustRun(t, "gc", cfg, "-m", "-d", "--prune-empty-repositories", "-o", "json", "-q", "--index", t.TempDir()))
	if len(dry.Delete.Repositories) != 1 || dry.Delete.Repositories[0].Repository != "library/debian" || dry.Summary.DeleteRepositories != 1 || !dry.Mode.PruneEmptyRepositories {
		t.Fatalf("dry run: repositories %+v, summary %d", dry.Delete.Repositories, dry.Summary.DeleteRepositories)
	}
	real := decodeScoped(t, mustRun(t, "gc", cfg, "-m", "--prune-empty-repositories", "-o", "json", "-q", "--index", t.TempDir()))
	if real.Result == nil || real.Result.DeletedRepositories != 1 || real.Verify == nil || len(real.Verify.Problems) != 0 {
		t.Fatalf("sweep: result %+v, verify %+v", real.Result, real.Verify)
	}
	if _, err := os.Stat(repo); !os.IsNotExist(err) {
		t.Errorf("library/debian is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(repo)); !os.IsNotExist(err) {
		t.Errorf("library/, left empty, is still there: %v", err)
	}
	again := decodeScoped(t, mustRun(t, "gc", cfg, "-m", "-d", "--prune-empty-repositories", "-o", "json", "-q", "--index", t.TempDir()))
	if len(again.Delete.Repositories) != 0 || again.Summary.Repositories != 2 {
		t.Errorf("after: repositories %+v, %d in storage", again.Delete.Repositories, again.Summary.Repositories)
	}
}
