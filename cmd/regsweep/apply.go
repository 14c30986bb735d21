package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
)

type applyOptions struct {
	commonOptions
	sweepFlags
}

func newApplyCommand() *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply CONFIG PLAN",
		Short: "Execute a plan written by gc --plan-out, re-checking every item first",
		Long: `apply rescans the storage CONFIG names, marks it again as it is now (with the plan's
mode and grace period, counted from now) and deletes only what the plan names and is
still garbage: a tag pushed since the plan was made wins. Tags the plan's retention
policy deletes are deleted only if the policy still does not keep them and they name the
same manifest, unpushed since. A plan made for other storage is refused.

Exit codes: 0 success, 1 error, 2 usage or wrong storage, 3 unreadable manifests
reachable, 4 registry accepts writes, 5 stopped at the window's end (--until,
--max-duration), 6 live data missing or corrupt after the sweep, 70 internal error.`,
		Example: `  regsweep gc /etc/docker/registry/config.yml -m --dry-run --plan-out plan.json
  # review plan.json, then in the maintenance window:
  regsweep apply /etc/docker/registry/config.yml plan.json --until 05:00`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.commonOptions.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			if err := o.sweepFlags.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			return runApply(cmd, args[0], args[1], o)
		},
	}
	o.commonOptions.bind(cmd)
	o.sweepFlags.bind(cmd)
	return cmd
}

func runApply(cmd *cobra.Command, config, planFile string, o applyOptions) error {
	if err := checkOutputs(o.metricsFile); err != nil {
		return err
	}
	b, err := os.ReadFile(planFile)
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	var old gc.Plan
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("plan %s is not a regsweep plan: %w", planFile, err)
	}
	s, err := openSession(cmd, config, o.storageFlags, true, true)
	if err != nil {
		return err
	}
	defer s.close()
	s.deadline = o.end
	s.tagTimes = old.Mode.Policy != nil
	if old.Storage != s.id {
		return &codeError{exitUsage, fmt.Errorf("plan %s was made for storage %q, but %s points at %q: refusing", planFile, old.Storage, config, s.id)}
	}
	if _, err := s.checkRegistry(cmd.Context(), o.sweepFlags); err != nil {
		return err
	}
	if err := s.scan(cmd, o.storageFlags, true); err != nil {
		return err
	}
	// The plan's mode, counted from now: a tag pushed since wins.
	plan, err := s.plan(cmd.Context(), modeFlags(old.Mode), gc.WithOnly(&old), gc.WithAllowMassDelete(o.allowMassDelete))
	if err != nil {
		return err
	}
	// What the plan named and the storage holds no more was deleted by an
	// interrupted apply (the journal says so); the rest is no longer garbage.
	var dropped, gone []string
	for _, p := range old.Dropped(plan) {
		j, err := s.idx.Journaled(p)
		if err == nil && !j {
			j, err = s.idx.Journaled(path.Dir(p)) // layer links are deleted with their directory
		}
		if err != nil {
			return fmt.Errorf("read sweep journal: %w", err)
		}
		if j {
			gone = append(gone, p)
			continue
		}
		dropped = append(dropped, p)
		s.log.Info("kept: no longer garbage since the plan was made", "path", p)
	}
	if len(gone) > 0 {
		s.log.Info("already deleted by an interrupted run of this plan", "paths", len(gone))
	}
	rep, err := s.sweep(cmd, plan, o.storageFlags, o.sweepFlags)
	if rep != nil {
		rep.Dropped, rep.AlreadyDeleted = dropped, gone
		if werr := writeReport(cmd.OutOrStdout(), rep, o.output); werr != nil {
			return werr
		}
	}
	if exitCode(err) == exitWindow && rep != nil {
		if merr := s.writeMetrics(o.metricsFile, rep); merr != nil {
			s.log.Error("metrics not written", "error", merr)
		}
	}
	if err != nil {
		return err
	}
	return s.writeMetrics(o.metricsFile, rep)
}
