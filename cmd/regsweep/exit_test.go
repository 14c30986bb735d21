package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// regsweepBinary builds the command once per test binary.
func regsweepBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "regsweep")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Usage errors exit 2, whatever cobra or the command finds wrong; a crash exits 70,
// never 2.
func TestExitCodes(t *testing.T) {
	bin := regsweepBinary(t)
	cfg := sampleConfig(t)
	for _, c := range []struct {
		args []string
		env  string
		want int
		says string
	}{
		{[]string{"gc"}, "", 2, "accepts 1 arg"},
		{[]string{"gc", cfg, "extra"}, "", 2, "accepts 1 arg"},
		{[]string{"gc", cfg, "--no-such-flag"}, "", 2, "unknown flag"},
		{[]string{"gc", cfg, "-Z"}, "", 2, "unknown shorthand"},
		{[]string{"gc", cfg, "--grace", "nonsense"}, "", 2, "--grace"},
		{[]string{"gc", cfg, "--workers", "-1"}, "", 2, "--workers"},
		{[]string{"nosuchcommand"}, "", 2, "unknown command"},
		{[]string{"report"}, "", 2, ""},
		{[]string{"gc", cfg, "-d", "-q", "--index", t.TempDir()}, "", 0, ""},
		{[]string{"gc", filepath.Join(t.TempDir(), "missing.yml")}, "", 1, "missing.yml"},
		{[]string{"gc", cfg, "-d"}, "REGSWEEP_CRASH_FOR_TEST=1", 70, "crashed"},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = os.Environ()
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.want || !strings.Contains(string(out), c.says) {
			t.Errorf("regsweep %s: exit %d, want %d with %q\n%s", strings.Join(c.args, " "), code, c.want, c.says, out)
		}
	}
}
