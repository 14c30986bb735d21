package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc/analysis"
)

type graphOptions struct {
	planFlags
	format string
}

func newGraphCommand() *cobra.Command {
	var o graphOptions
	cmd := &cobra.Command{
		Use:   "graph --index DIR REPOSITORY",
		Short: "Draw one repository's tags, manifests and blobs (Graphviz dot or Mermaid) from the index",
		Long: `graph draws, from an index filled by regsweep scan, one repository's reference graph:
tags → manifests → index children → configs and layers, referrers → their subjects, and
blobs linked into the repository that no manifest reaches. Each node shows a short digest
and its size; its fill says what gc would do (green live, red garbage, amber kept,
grey missing) in the mode given (default unless -m), and a thick blue border marks blobs
that other repositories' live manifests reach too (deleting this repository would not
free them).

  regsweep graph --index DIR team/app | dot -Tsvg > team-app.svg

Exit codes: 0 success, 1 error, 2 usage (unknown repository included).`,
		Example: `  regsweep scan CONFIG --index /var/tmp/regsweep
  regsweep graph --index /var/tmp/regsweep team/app | dot -Tsvg > team-app.svg
  regsweep graph --index /var/tmp/regsweep team/app -m --format mermaid`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.planFlags.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			if o.format != "dot" && o.format != "mermaid" && o.format != "json" {
				return &codeError{exitUsage, fmt.Errorf("--format %q: want dot, mermaid or json", o.format)}
			}
			return runGraph(cmd, args[0], o)
		},
	}
	o.planFlags.bind(cmd)
	cmd.Flags().StringVar(&o.format, "format", "dot", "dot, mermaid or json")
	return cmd
}

func runGraph(cmd *cobra.Command, repo string, o graphOptions) error {
	plan, done, err := o.loadIndex(cmd.Context(), o.deleteUntagged)
	if err != nil {
		return err
	}
	defer done()
	known := false
	for _, r := range plan.Repositories {
		known = known || r.Name == repo
	}
	if !known {
		return &codeError{exitUsage, fmt.Errorf("repository %q is not in the index (or has no _manifests)", repo)}
	}
	gs, err := analysis.NewImageGraphs(cmd.Context(), plan, repo)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	switch o.format {
	case "mermaid":
		return gs[0].WriteMermaid(out)
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(gs[0])
	}
	return gs[0].WriteDOT(out)
}
