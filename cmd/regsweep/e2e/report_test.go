//go:build e2e

package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// reportMatchesGC: on the storage the real registry wrote, `scan` + `report` (json and
// csv, both modes) answer exactly what `gc --dry-run -o json` does.
func reportMatchesGC(t *testing.T, s *scenario) {
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	cfg, _ := registryCfg(t, root)
	index := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		var out, errb bytes.Buffer
		c := exec.Command(regsweepBin, args...)
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("regsweep %v: %v\n%s", args, err, errb.String())
		}
		return out.Bytes()
	}
	run("scan", cfg, "--index", index, "-q")
	for _, flags := range [][]string{nil, {"-m"}} {
		gcOut := run(append([]string{"gc", cfg, "-d", "-q", "--grace", "0", "-o", "json", "--index", t.TempDir()}, flags...)...)
		var rep struct {
			Summary      map[string]any   `json:"summary"`
			Repositories []map[string]any `json:"repositories"`
		}
		if err := json.Unmarshal(run(append([]string{"report", "--index", index, "-o", "json", "--grace", "0"}, flags...)...), &rep); err != nil {
			t.Fatal(err)
		}
		var want struct {
			Summary      map[string]any   `json:"summary"`
			Repositories []map[string]any `json:"repositories"`
		}
		if err := json.Unmarshal(gcOut, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rep.Summary, want.Summary) {
			t.Errorf("%v: report summary %v\ngc summary %v", flags, rep.Summary, want.Summary)
		}
		if !reflect.DeepEqual(rep.Repositories, want.Repositories) {
			t.Errorf("%v: report repositories %v\ngc repositories %v", flags, rep.Repositories, want.Repositories)
		}
		rows, err := csv.NewReader(bytes.NewReader(run(append([]string{"report", "--index", index, "-o", "csv", "--grace", "0"}, flags...)...))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want.Repositories)+1 {
			t.Fatalf("%v: csv has %d rows for %d repositories", flags, len(rows), len(want.Repositories))
		}
		for i, r := range want.Repositories {
			row := map[string]string{}
			for j, h := range rows[0] {
				row[h] = rows[i+1][j]
			}
			for _, k := range []string{"bytes", "unique_bytes", "shared_bytes", "reclaimable_bytes", "tags", "manifests"} {
				if row[k] != strconv.FormatInt(int64(r[k].(float64)), 10) {
					t.Errorf("%v: csv %s %s = %s, json %v", flags, r["name"], k, row[k], r[k])
				}
			}
		}
	}
}
