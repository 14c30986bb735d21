package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/probe"
	"github.com/regsweep/regsweep/internal/regtest"
)

// regsweep-beam plan, from its flags as an operator gives them, writes a plan file
// that regsweep apply accepts and sweeps: everything the plan names, nothing else.
func TestCLIPlanThenRegsweepApply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds regsweep")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "regsweep")
	build := exec.Command("go", "build", "-C", "../..", "-o", bin, "./cmd/regsweep")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build regsweep: %v\n%s", err, out)
	}
	root := regtest.Sample(t)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fsConfig(root)), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "plan.json")
	for k, v := range map[string]string{"m": "true", "grace": "0s", "out": plan} {
		if err := flag.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, k := range []string{"m", "grace", "out"} {
			f := flag.Lookup(k)
			f.Value.Set(f.DefValue)
		}
	}()
	if err := runPlan(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Blobs     []json.RawMessage `json:"blobs"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "apply", cfg, plan, "-q", "-o", "json", "--index", t.TempDir()).Output()
	if err != nil {
		t.Fatalf("regsweep apply: %v\n%s", err, out)
	}
	var rep struct {
		Result struct {
			DeletedBlobs     int `json:"deleted_blobs"`
			DeletedManifests int `json:"deleted_manifests"`
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result.DeletedBlobs != len(p.Blobs) || rep.Result.DeletedManifests != len(p.Manifests) || len(p.Blobs) == 0 {
		t.Errorf("regsweep apply deleted %d blobs and %d manifests; the plan names %d and %d", rep.Result.DeletedBlobs, rep.Result.DeletedManifests, len(p.Blobs), len(p.Manifests))
	}
}

// regsweep-beam sweep asks the registry serving the storage whether it accepts
// pushes, and refuses, deleting nothing, while it does; read-only, it sweeps.
func TestCLISweepRefusesWritableRegistry(t *testing.T) {
	logrus.SetLevel(logrus.PanicLevel) // the registry logs every request
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("read-only=", readOnly), func(t *testing.T) {
			root := regtest.Sample(t)
			// No upload purging: its first run comes after a random 0-59 minutes,
			// and at 0 it would delete the sample's old upload under the test.
			y := fsConfig(root) + "  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n"
			if readOnly {
				y += "    readonly:\n      enabled: true\n"
			}
			rc, err := configuration.Parse(strings.NewReader(y))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(handlers.NewApp(context.Background(), rc))
			defer srv.Close()
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(cfg, []byte(y+"http:\n  addr: "+strings.TrimPrefix(srv.URL, "http://")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			now := time.Now().Add(time.Hour)
			p, err := beamPlan(t, y, now, modes[1], 16)
			if err != nil {
				t.Fatal(err)
			}
			plan := filepath.Join(dir, "plan.json")
			if err := writePlan(plan, p); err != nil {
				t.Fatal(err)
			}
			if err := flag.Set("plan", plan); err != nil {
				t.Fatal(err)
			}
			defer flag.Set("plan", "")
			before := regtest.Files(t, root)
			err = runSweep(context.Background(), cfg)
			after := regtest.Files(t, root)
			switch {
			case !readOnly && !errors.Is(err, probe.ErrWritable):
				t.Fatalf("writable registry: %v, want a refusal", err)
			case !readOnly && !slices.Equal(before, after):
				t.Errorf("the refused sweep changed the storage: %d files before, %d after", len(before), len(after))
			case readOnly && err != nil:
				t.Fatalf("read-only registry: %v", err)
			case readOnly && len(after) >= len(before):
				t.Errorf("the sweep deleted nothing: %d files before, %d after", len(before), len(after))
			}
		})
	}
}

// regsweep-beam sweep refuses, deleting nothing, a plan it must not sweep: one
// with blocked manifests, one made for other storage, one older than
// --max-plan-age, one deleting tags (policies: regsweep apply's).
func TestCLISweepRefusals(t *testing.T) {
	now := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name, want string
		change     func(p *gc.Plan)
	}{
		{"blocked", "unreadable manifests are reachable", func(p *gc.Plan) {
			p.Blocked = []graph.Warning{{Kind: "unreadable_manifest", Digest: "sha256:" + strings.Repeat("a", 64)}}
		}},
		{"other storage", "was made for storage", func(p *gc.Plan) { p.Storage = "filesystem rootdirectory=/elsewhere" }},
		{"old", "--max-plan-age", func(p *gc.Plan) { p.Mode.Now = time.Now().Add(-7 * time.Hour) }},
		{"tags", "regsweep apply", func(p *gc.Plan) { p.Tags = []gc.TagItem{{Repository: "library/debian", Tag: "12"}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := regtest.Sample(t)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(cfg, []byte(fsConfig(root)), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := beamPlan(t, fsConfig(root), now, modes[1], 16)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Blobs) == 0 {
				t.Fatal("the plan deletes nothing")
			}
			c.change(p)
			plan := filepath.Join(dir, "plan.json")
			if err := writePlan(plan, p); err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{"plan": plan, "registry-url": "none"} {
				if err := flag.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			defer flag.Set("plan", "")
			defer flag.Set("registry-url", "")
			before := regtest.Files(t, root)
			err = runSweep(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("sweep: %v, want a refusal naming %q", err, c.want)
			}
			if after := regtest.Files(t, root); !slices.Equal(before, after) {
				t.Errorf("the refused sweep changed the storage: %d files before, %d after", len(before), len(after))
			}
		})
	}
}

// Flags out of range are refused before anything is read; a valid set passes.
func TestCLIFlagRanges(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"config.yml", "--out", "p.json"}, true},
		{[]string{"--repo-shards", "1", "config.yml", "--out", "p.json"}, true},
		{[]string{"--repo-shards", "0", "config.yml", "--out", "p.json"}, false},
		{[]string{"--workers", "0", "config.yml", "--out", "p.json"}, false},
		{[]string{"--rounds", "0", "config.yml", "--out", "p.json"}, false},
		{[]string{"--read-rounds", "-1", "config.yml", "--out", "p.json"}, false},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			defer func() {
				for _, k := range []string{"out", "repo-shards", "workers", "rounds", "read-rounds"} {
					flag.Set(k, flag.Lookup(k).DefValue)
				}
			}()
			cfg, err := parseArgs("plan", c.args)
			switch {
			case c.ok && (err != nil || cfg != "config.yml"):
				t.Errorf("parseArgs = %q, %v; want config.yml", cfg, err)
			case !c.ok && (err == nil || !strings.Contains(err.Error(), "must be at least")):
				t.Errorf("parseArgs = %q, %v; want a range error", cfg, err)
			}
		})
	}
}
