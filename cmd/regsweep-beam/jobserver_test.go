package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// The path a cluster takes, on this machine: prism as a job server of its own
// process (the Job API that Flink's and Spark's job servers serve), the pipeline
// submitted by the SDK's flink runner from regsweep-beam's command line, its worker
// binary staged as an artifact, and workers started as processes by Beam's SDK
// container boot program, which fetches that binary as a worker container does.
// The plan equals regsweep gc's and the sweep leaves regsweep gc's tree.
func TestJobServerWithBootedWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds regsweep-beam, prism and Beam's boot program")
	}
	dir := t.TempDir()
	build := func(name, pkg string) string {
		out := filepath.Join(dir, name)
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
		return out
	}
	bin := build("regsweep-beam", ".")
	prism := build("prism", "github.com/apache/beam/sdks/v2/go/cmd/prism")
	boot := build("boot", "github.com/apache/beam/sdks/v2/go/container")
	// prism starts a process environment's command with --id='<id>', quoted as for
	// a shell but without one; the wrapper drops the quotes (a worker container's
	// entry point gets the id bare).
	wrapper := filepath.Join(dir, "boot.sh")
	script := "#!/bin/sh\nset -f\nexec " + boot + " $(for a in \"$@\"; do printf '%s\\n' \"$a\" | tr -d \"'\"; done)\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	logFile, err := os.Create(filepath.Join(dir, "jobserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	jobLog := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	js := exec.Command(prism, "--job_port="+port, "--serve_http=false")
	js.Stdout, js.Stderr = logFile, logFile
	js.Dir = dir // the boot program writes pipeline_options.json where it runs
	// Its own process group: the boot programs and workers it starts go with it.
	js.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := js.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-js.Process.Pid, syscall.SIGKILL)
		js.Wait()
	})
	for deadline := time.Now().Add(time.Minute); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job server did not listen on %s:\n%s", port, jobLog())
		}
		time.Sleep(100 * time.Millisecond)
	}

	src := t.TempDir()
	populate(t, src, 12)
	root, gcRoot := t.TempDir(), t.TempDir()
	regtest.CopyTree(t, src, root)
	regtest.CopyTree(t, src, gcRoot)
	cfg := filepath.Join(dir, "config.yml")
	// Read-only, and nothing serves it: the sweep's probe lets it through.
	config := fsConfig(root) + "  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  addr: 127.0.0.1:1\n"
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	runner := []string{"--runner=flink", "--endpoint=localhost:" + port, "--environment_type=PROCESS",
		`--environment_config={"command":"` + wrapper + `"}`, "--worker_binary=" + bin}
	run := func(args ...string) {
		t.Helper()
		c := exec.Command(bin, append(args, runner...)...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("regsweep-beam %s: %v\n%s\njob server:\n%s", args[0], err, out, jobLog())
		}
	}
	m := modes[1]
	planFile := filepath.Join(dir, "plan.json")
	run("plan", cfg, "-m", "--grace", "0s", "--out", planFile)
	b, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var got gc.Plan
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := gcPlan(t, gcRoot, got.Mode.Now, m)
	if len(want.Blobs) == 0 || len(want.Manifests) == 0 {
		t.Fatalf("regsweep gc deletes %d blobs and %d manifests: the registry exercises nothing", len(want.Blobs), len(want.Manifests))
	}
	samePlan(t, "job server", want, &got)

	run("sweep", cfg, "--plan", planFile)
	gcSweep(t, storage.NewFilesystem(gcRoot), got.Mode.Now, m)
	sameTree(t, "job server", keys(t, storage.NewFilesystem(gcRoot)), keys(t, storage.NewFilesystem(root)))
}
