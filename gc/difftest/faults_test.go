package difftest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

const nFaultSeeds = 100

// sweepOnce scans root through drv, plans and sweeps as regsweep gc does (roots
// checked again before deleting, the index as journal). It returns the plan, if it
// got that far, and the first error.
func sweepOnce(t *testing.T, drv driver.StorageDriver, indexDir string, m bool, now time.Time) (*gc.Plan, error) {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(indexDir)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(8)); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	meta, err := idx.Meta()
	if err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(m), gc.WithGracePeriod(0), gc.WithNow(now))
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	check := sweep.NewRootCheck(drv, p.Scanned(), meta.Started, 0, 8, true)
	_, err = sweep.Run(ctx, drv, p, sweep.WithWorkers(8), sweep.WithJournal(idx), sweep.WithRecheck(check.Check, time.Minute))
	if err != nil {
		return p, fmt.Errorf("sweep: %w", err)
	}
	return p, nil
}

// TestFaults runs regsweep on storage that fails now and then: on 1-5% of calls to
// list, stat, read and delete, an error that may pass, a timeout, or a listing that
// comes back empty once. For every seed:
//   - the faulty run deletes nothing that a fault-free run keeps: it either fails
//     closed or deletes a part of what the fault-free run deletes;
//   - run again without faults, the storage ends as the fault-free run leaves it;
//   - behind storage.Patient, errors and timeouts pass: the plan is the fault-free one.
func TestFaults(t *testing.T) {
	var mu sync.Mutex
	outcomes := map[string]int{}
	count := func(k string) { mu.Lock(); outcomes[k]++; mu.Unlock() }
	t.Run("seed", func(t *testing.T) {
		for seed := uint64(1); seed <= nFaultSeeds; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				rate := 0.01 + float64(seed%5)*0.01
				m := seed%2 == 0
				base := tempDir(t)
				orig := filepath.Join(base, "orig")
				_, ns, err := synth.NewFilesystem(ctx, orig)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := synth.Populate(ctx, ns, int64(seed), synth.Small()); err != nil {
					t.Fatal(err)
				}
				now := time.Now().Add(time.Hour)

				ref := filepath.Join(base, "ref")
				copyTree(t, orig, ref)
				want, err := sweepOnce(t, storage.NewFilesystem(ref), filepath.Join(base, "ref-index"), m, now)
				if err != nil {
					t.Fatalf("fault-free run: %v", err)
				}
				wantFiles := listFiles(t, ref)

				work := filepath.Join(base, "work")
				copyTree(t, orig, work)
				// Each fault kind alone on some seeds, all together on others: errors
				// during the scan end most runs before a delete is reached.
				rates := []storage.FaultRates{
					{Error: rate / 2, Timeout: rate / 2, EmptyPage: rate, Reads: true, Deletes: true},
					{EmptyPage: rate * 3},
					{Error: rate * 3, Timeout: rate * 2, Deletes: true},
				}[seed%3]
				faulty := storage.NewFaulty(storage.NewFilesystem(work), seed, rates)
				_, err = sweepOnce(t, faulty, filepath.Join(base, "work-index"), m, now)
				faultErr := err
				switch {
				case faulty.Injected() == 0:
					count("no fault drawn")
				case err == nil:
					count("swept under faults")
				case errors.Is(err, sweep.ErrUnreliableListing):
					count("refused: a listing missed roots")
				case errors.Is(err, gc.ErrIncompleteStorage):
					count("refused: storage looks incomplete")
				case errors.Is(err, sweep.ErrBlocked):
					count("refused: broken roots (a blob listing missed manifests)")
				case errors.Is(err, storage.ErrInjected):
					count("failed on a storage error")
				default:
					t.Errorf("under faults, an error that names no fault: %v", err)
				}
				got := listFiles(t, work)
				if lost := wantFiles.minus(got); len(lost) > 0 {
					t.Fatalf("rate %.2f, -m=%v: under faults (%v; listings emptied: %v) the run deleted %d files a fault-free run keeps: %v", rate, m, err, faulty.Emptied(), len(lost), lost)
				}
				if _, err := sweepOnce(t, storage.NewFilesystem(work), filepath.Join(base, "work-index"), m, now); err != nil {
					t.Fatalf("rerun without faults: %v", err)
				}
				if d := symDiff(wantFiles, listFiles(t, work)); len(d) > 0 {
					t.Errorf("rerun without faults (after %v) does not end in the fault-free tree: %v", faultErr, d)
				}

				// Errors and timeouts, behind Patient: the same plan.
				if seed%4 == 0 {
					again := filepath.Join(base, "again")
					copyTree(t, orig, again)
					faulty := storage.NewFaulty(storage.NewFilesystem(again), seed, storage.FaultRates{Error: rate, Timeout: rate, Reads: true, Deletes: true})
					patient := storage.NewPatient(faulty, storage.PatientOptions{Backoff: time.Millisecond, Tries: 8})
					p, err := sweepOnce(t, patient, filepath.Join(base, "again-index"), m, now)
					if err != nil {
						t.Fatalf("behind Patient, at %.2f faults a call: %v", rate, err)
					}
					if d := symDiff(fileSet(pathSet(want)), fileSet(pathSet(p))); len(d) > 0 {
						t.Errorf("behind Patient the plan differs: %v", d)
					}
					if d := symDiff(wantFiles, listFiles(t, again)); len(d) > 0 {
						t.Errorf("behind Patient the sweep does not end in the fault-free tree: %v", d)
					}
					count("behind Patient: same plan and tree")
				}
			})
		}
	})
	t.Logf("%d seeds: %v", nFaultSeeds, outcomes)
	if outcomes["swept under faults"] == 0 || outcomes["failed on a storage error"] == 0 || outcomes["refused: a listing missed roots"] == 0 {
		t.Errorf("the fault rates exercise too little: %v", outcomes)
	}
}

func pathSet(p *gc.Plan) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range p.Paths() {
		out[k] = struct{}{}
	}
	return out
}
