// Package analysis turns a plan into what operators read: the report contract,
// Prometheus metrics, the capacity view, what-ifs and image graphs. Every number
// comes from the plan's graph by the walk every part of regsweep shares.
package analysis

import (
	"time"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/gc/verify"
	"github.com/regsweep/regsweep/graph"
)

// Report is the report contract of docs/design.md: tools parse it, so fields are only
// ever added, never renamed.
type Report struct {
	Mode         ReportMode      `json:"mode"`
	Summary      gc.Summary      `json:"summary"`
	Delete       Deletions       `json:"delete"`
	Repositories []gc.RepoStats  `json:"repositories"`
	Warnings     []graph.Warning `json:"warnings"`
	// Extensions.
	Storage string          `json:"storage,omitempty"`
	Kept    []gc.KeptItem   `json:"kept"`
	Blocked []graph.Warning `json:"blocked"`
	// Result is what a real sweep did; absent on dry runs.
	Result *sweep.Result `json:"result,omitempty"`
	// Dropped lists paths an applied plan named that are no longer garbage.
	Dropped []string `json:"dropped,omitempty"`
	// AlreadyDeleted lists paths an applied plan named that an interrupted run of
	// it had deleted.
	AlreadyDeleted []string `json:"already_deleted,omitempty"`
	// Registry says what the registry serving this storage answered when asked,
	// before a real sweep, whether it accepts writes.
	Registry []RegistryCheck `json:"registry,omitempty"`
	// Retention says what retention policies decided and what untagging frees.
	Retention *gc.Retention `json:"retention,omitempty"`
	// Window is the maintenance window of the run and whether the plan fits it.
	Window *Window `json:"window,omitempty"`
	// Verify is the closure check after a real sweep (absent with --no-verify, or
	// when the window ended first).
	Verify *verify.Report `json:"verify,omitempty"`
	// Scope is set when --repo narrowed the report to some repositories.
	Scope *Scope `json:"scope,omitempty"`
}

// Window is a run's maintenance window: when it ends, and whether the plan fits it
// at the delete rate measured by the last sweep of this storage.
type Window struct {
	Until time.Time `json:"until"`
	Items int       `json:"items"`
	// DeletesPerSecond is the rate the estimate assumes (absent: none measured yet).
	DeletesPerSecond float64   `json:"deletes_per_second,omitempty"`
	RateMeasured     time.Time `json:"rate_measured,omitzero"`
	EstimatedSeconds float64   `json:"estimated_seconds,omitempty"`
	Fits             *bool     `json:"fits,omitempty"`
	// Stopped: the window ended before the sweep did; result.remaining says what
	// is left.
	Stopped bool `json:"stopped"`
}

// RegistryCheck is one probed registry address.
type RegistryCheck struct {
	URL    string `json:"url"`
	State  string `json:"state"` // writable, read-only, not listening, not a registry, unknown, skipped
	Detail string `json:"detail,omitempty"`
}

// ReportMode is the mode object of the report.
type ReportMode struct {
	DryRun           bool  `json:"dry_run"`
	DeleteUntagged   bool  `json:"delete_untagged"`
	GraceSeconds     int64 `json:"grace_seconds"`
	KeepReferrers    bool  `json:"keep_referrers"`
	UploadAgeSeconds int64 `json:"upload_age_seconds"`
	// Policy is the retention policy file applied, if any.
	Policy *policy.File `json:"policy,omitempty"`
	// PruneEmptyRepositories: delete.repositories lists the empty repositories.
	PruneEmptyRepositories bool `json:"prune_empty_repositories,omitempty"`
}

// Deletions is the delete object of the report.
type Deletions struct {
	// Tags are deleted first: those retention policies do not keep.
	Tags       []gc.TagItem      `json:"tags"`
	Blobs      []gc.BlobItem     `json:"blobs"`
	Manifests  []gc.ManifestItem `json:"manifests"`
	LayerLinks []gc.LinkItem     `json:"layer_links"`
	Uploads    []gc.UploadItem   `json:"uploads"`
	// Repositories are removed last, when --prune-empty-repositories finds them empty.
	Repositories []gc.RepoItem `json:"repositories,omitempty"`
}

// NewReport renders a plan as the report contract.
func NewReport(p *gc.Plan, dryRun bool) *Report {
	return &Report{
		Mode: ReportMode{
			DryRun: dryRun, DeleteUntagged: p.Mode.DeleteUntagged, GraceSeconds: p.Mode.GraceSeconds,
			KeepReferrers: p.Mode.KeepReferrers, UploadAgeSeconds: p.Mode.UploadAgeSeconds, Policy: p.Mode.Policy,
			PruneEmptyRepositories: p.Mode.PruneEmptyRepositories,
		},
		Summary: p.Summary,
		Delete: Deletions{
			Tags: nonNil(p.Tags), Blobs: nonNil(p.Blobs), Manifests: nonNil(p.Manifests),
			LayerLinks: nonNil(p.LayerLinks), Uploads: nonNil(p.Uploads), Repositories: p.EmptyRepositories,
		},
		Repositories: nonNil(p.Repositories),
		Warnings:     nonNil(p.Warnings),
		Storage:      p.Storage,
		Kept:         nonNil(p.Kept),
		Blocked:      nonNil(p.Blocked),
		Retention:    p.Retention,
	}
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
