//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// pruneEmptyRepository deletes every manifest of legacy/docker through 2.8.2's API
// (which untags them too), then runs gc -m --prune-empty-repositories: the
// repository's directory goes, 2.8.2's catalog no longer lists it, legacy/list beside
// it and every other tag still answer with the digest they had, and 2.8.2's own
// garbage-collect reads the storage without error.
func pruneEmptyRepository(t *testing.T, s *scenario) {
	const gone = "legacy/docker"
	root := filepath.Join(t.TempDir(), "storage")
	copyTree(t, s.root, root)
	cfg, _ := registryCfg(t, root)

	reg := startRegistry(t, root)
	tags := tagLinks(t, root)
	deleted := map[digest.Digest]bool{}
	for ref, d := range tags {
		if repo, _, _ := strings.Cut(ref, ":"); repo == gone && !deleted[d] {
			if code, body := reg.deleteManifest(t, gone, d.String()); code != http.StatusAccepted {
				t.Fatalf("DELETE %s@%s = %d %s", gone, d, code, body)
			}
			deleted[d] = true
		}
	}
	reg.stop(t)
	if len(deleted) == 0 {
		t.Fatalf("%s has no tag in the scenario", gone)
	}

	code, out, stderr := regsweepExit(t, "gc", cfg, "--grace", "0", "-m", "--prune-empty-repositories", "-o", "json")
	if code != 0 {
		t.Fatalf("gc -m --prune-empty-repositories: exit %d\n%s", code, stderr)
	}
	var rep struct {
		Delete struct {
			Repositories []struct {
				Repository string `json:"repository"`
			} `json:"repositories"`
		} `json:"delete"`
		Result struct {
			DeletedRepositories int `json:"deleted_repositories"`
		} `json:"result"`
		Verify *struct {
			Problems []json.RawMessage `json:"problems"`
		} `json:"verify"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var removed []string
	for _, r := range rep.Delete.Repositories {
		removed = append(removed, r.Repository)
	}
	if !slices.Contains(removed, gone) || rep.Result.DeletedRepositories != len(removed) {
		t.Errorf("planned %v, removed %d: want %s among them", removed, rep.Result.DeletedRepositories, gone)
	}
	if rep.Verify == nil || len(rep.Verify.Problems) != 0 {
		t.Errorf("the check after the sweep: %+v", rep.Verify)
	}
	if _, err := os.Stat(filepath.Join(v2(root), "repositories", gone)); !os.IsNotExist(err) {
		t.Errorf("%s is still on disk: %v", gone, err)
	}

	reg = startRegistryMode(t, root, true)
	defer reg.stop(t)
	resp, err := httpClient.Get("http://" + reg.addr + "/v2/_catalog?n=1000")
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	err = json.NewDecoder(resp.Body).Decode(&cat)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(cat.Repositories, gone) || !slices.Contains(cat.Repositories, "legacy/list") {
		t.Errorf("2.8.2's catalog after the sweep: %v", cat.Repositories)
	}
	others := 0
	for ref, d := range tags {
		repo, tag, _ := strings.Cut(ref, ":")
		if repo == gone {
			continue
		}
		others++
		if code, got, _ := reg.headManifest(t, repo, tag); code != 200 || got != d {
			t.Errorf("HEAD %s after the sweep = %d %s, want 200 %s", ref, code, got, d)
		}
	}
	reg.stop(t)
	if dist := distGC(t, cfg, "--dry-run"); len(dist.blobs) != 0 {
		t.Errorf("after the sweep, 2.8.2 garbage-collect --dry-run still finds %s", s.w.nameSet(dist.blobs))
	}
	t.Logf("removed %v; %d other tags answer; 2.8.2's catalog: %v", removed, others, cat.Repositories)
}
