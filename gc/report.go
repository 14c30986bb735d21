package gc

import "github.com/regsweep/regsweep/graph"

// Report is the report contract of docs/design.md: tools parse it, so fields are only
// ever added, never renamed.
type Report struct {
	Mode         ReportMode      `json:"mode"`
	Summary      Summary         `json:"summary"`
	Delete       Deletions       `json:"delete"`
	Repositories []RepoStats     `json:"repositories"`
	Warnings     []graph.Warning `json:"warnings"`
	// Extensions.
	Storage string          `json:"storage,omitempty"`
	Kept    []KeptItem      `json:"kept"`
	Blocked []graph.Warning `json:"blocked"`
	// Result is what a real sweep did; absent on dry runs.
	Result *Result `json:"result,omitempty"`
	// Dropped lists paths an applied plan named that are no longer garbage.
	Dropped []string `json:"dropped,omitempty"`
	// AlreadyDeleted lists paths an applied plan named that an interrupted run of
	// it had deleted.
	AlreadyDeleted []string `json:"already_deleted,omitempty"`
	// Registry says what the registry serving this storage answered when asked,
	// before a real sweep, whether it accepts writes.
	Registry []RegistryCheck `json:"registry,omitempty"`
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
}

// Deletions is the delete object of the report.
type Deletions struct {
	Blobs      []BlobItem     `json:"blobs"`
	Manifests  []ManifestItem `json:"manifests"`
	LayerLinks []LinkItem     `json:"layer_links"`
	Uploads    []UploadItem   `json:"uploads"`
}

// NewReport renders a plan as the report contract.
func NewReport(p *Plan, dryRun bool) *Report {
	return &Report{
		Mode: ReportMode{
			DryRun: dryRun, DeleteUntagged: p.Mode.DeleteUntagged, GraceSeconds: p.Mode.GraceSeconds,
			KeepReferrers: p.Mode.KeepReferrers, UploadAgeSeconds: p.Mode.UploadAgeSeconds,
		},
		Summary: p.Summary,
		Delete: Deletions{
			Blobs: nonNil(p.Blobs), Manifests: nonNil(p.Manifests),
			LayerLinks: nonNil(p.LayerLinks), Uploads: nonNil(p.Uploads),
		},
		Repositories: nonNil(p.Repositories),
		Warnings:     nonNil(p.Warnings),
		Storage:      p.Storage,
		Kept:         nonNil(p.Kept),
		Blocked:      nonNil(p.Blocked),
	}
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
