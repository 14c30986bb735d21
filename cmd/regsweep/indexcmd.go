package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/graph"
)

// cachedIndex is one index directory under the user cache dir.
type cachedIndex struct {
	Dir      string    `json:"dir"`
	Storage  string    `json:"storage,omitempty"`
	Scanned  time.Time `json:"scanned,omitzero"` // when its last scan finished
	Bytes    int64     `json:"bytes"`
	State    string    `json:"state"` // ok, in use, unfinished sweep, damaged, empty
	Detail   string    `json:"detail,omitempty"`
	Modified time.Time `json:"modified"` // of the directory's newest file
}

// indexRoot is where gc, apply, verify and inspect keep one index per storage when
// --index is not given.
func indexRoot() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (%v): the cached indexes live under it", err)
	}
	return filepath.Join(cache, "regsweep"), nil
}

func newIndexCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "List and prune the indexes gc, apply, verify and inspect cache (one per storage)",
		Long: `Without --index, gc, apply, verify and inspect keep an index per storage under the user
cache directory (~/.cache/regsweep on Linux): its scan, the sweep journal and the
measured delete rate. They accumulate, one per storage ever collected.

Exit codes: 0 success, 1 error, 2 usage.`,
		Args: cobra.NoArgs,
	}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the cached indexes: storage, last scan, size, state",
		Example: `  regsweep index list
  regsweep index list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &codeError{exitUsage, fmt.Errorf("--output %q: want text or json", output)}
			}
			root, err := indexRoot()
			if err != nil {
				return err
			}
			ixs, err := cachedIndexes(root)
			if err != nil {
				return err
			}
			return writeIndexes(cmd.OutOrStdout(), root, ixs, output)
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	var (
		olderThan time.Duration
		dryRun    bool
		all       bool
	)
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached indexes not used for --older-than (never one in use or holding an unfinished sweep)",
		Example: `  regsweep index prune                    # not used for 30 days
  regsweep index prune --older-than 0 -d  # what removing every unused one would free`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan < 0 {
				return &codeError{exitUsage, fmt.Errorf("--older-than %v: want 0 or more", olderThan)}
			}
			root, err := indexRoot()
			if err != nil {
				return err
			}
			ixs, err := cachedIndexes(root)
			if err != nil {
				return err
			}
			var freed int64
			removed := 0
			for _, ix := range ixs {
				keep := ""
				switch {
				case ix.State == "in use":
					keep = "in use by a running regsweep"
				case ix.State == "unfinished sweep" && !all:
					keep = "holds the journal of an interrupted sweep: the next gc of that storage finishes it (--all removes it anyway)"
				case time.Since(ix.Modified) < olderThan:
					keep = "used " + time.Since(ix.Modified).Round(time.Hour).String() + " ago"
				}
				if keep != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "kept %s (%s): %s\n", ix.Dir, orDash(ix.Storage), keep)
					continue
				}
				if !dryRun {
					if err := os.RemoveAll(ix.Dir); err != nil {
						return fmt.Errorf("remove %s: %w", ix.Dir, err)
					}
				}
				removed++
				freed += ix.Bytes
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (%s, %s)\n", ix.Dir, orDash(ix.Storage), ib(ix.Bytes))
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s, %s\n", verb, plural(removed, "index"), ib(freed))
			return nil
		},
	}
	pf := prune.Flags()
	pf.DurationVar(&olderThan, "older-than", 30*24*time.Hour, "remove indexes not used for this long")
	pf.BoolVarP(&dryRun, "dry-run", "d", false, "only say what would be removed")
	pf.BoolVar(&all, "all", false, "also remove indexes holding an interrupted sweep's journal")
	cmd.AddCommand(list, prune)
	return cmd
}

// cachedIndexes describes every index directory under root.
func cachedIndexes(root string) ([]cachedIndex, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []cachedIndex
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		ix := cachedIndex{Dir: filepath.Join(root, e.Name()), State: "ok"}
		filepath.WalkDir(ix.Dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					ix.Bytes += fi.Size()
					if fi.ModTime().After(ix.Modified) {
						ix.Modified = fi.ModTime()
					}
				}
			}
			return nil
		})
		ixs, _ := os.ReadDir(ix.Dir)
		if len(ixs) == 0 {
			ix.State = "empty"
			out = append(out, ix)
			continue
		}
		idx, err := graph.Open(ix.Dir)
		switch {
		case errors.Is(err, graph.ErrIndexInUse):
			ix.State = "in use"
		case err != nil:
			ix.State, ix.Detail = "damaged", err.Error()
		default:
			if m, err := idx.Meta(); err == nil {
				ix.Storage, ix.Scanned = m.Storage, m.Finished
			}
			if plan, err := idx.UnfinishedPlan(); err == nil && plan != nil {
				ix.State = "unfinished sweep"
			}
			idx.Close()
		}
		out = append(out, ix)
	}
	slices.SortFunc(out, func(a, b cachedIndex) int { return b.Modified.Compare(a.Modified) })
	return out, nil
}

func writeIndexes(w io.Writer, root string, ixs []cachedIndex, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if ixs == nil {
			ixs = []cachedIndex{}
		}
		return enc.Encode(ixs)
	}
	fmt.Fprintf(w, "%s under %s\n", plural(len(ixs), "cached index"), root)
	var total int64
	for _, ix := range ixs {
		total += ix.Bytes
		scanned := "-"
		if !ix.Scanned.IsZero() {
			scanned = ix.Scanned.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(w, "  %-18s %10s  scanned %-16s  %-16s %s\n", filepath.Base(ix.Dir), ib(ix.Bytes), scanned, ix.State, orDash(ix.Storage))
	}
	if len(ixs) > 0 {
		fmt.Fprintf(w, "%s in all; regsweep index prune removes those unused for 30 days\n", ib(total))
	}
	return nil
}
