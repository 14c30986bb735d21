//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// registryCfg writes a registry configuration for storage root dir listening on a
// free port, readable by docker-registry 2.8.2 and by regsweep (distribution v3).
func registryCfg(t *testing.T, root string) (cfg, addr string) {
	return registryCfgMode(t, root, false)
}

// registryCfgMode is registryCfg, in maintenance.readonly mode when readOnly.
func registryCfgMode(t *testing.T, root string, readOnly bool) (cfg, addr string) {
	t.Helper()
	addr = freeAddr(t)
	cfg = filepath.Join(t.TempDir(), "config.yml")
	body := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: %v
http:
  addr: %s
`, root, readOnly, addr)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, addr
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// registry is a running docker-registry serve.
type registry struct {
	addr string
	cfg  string // its config file
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// syncBuffer collects the registry's output while the test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// startRegistry starts `docker-registry serve` on storage root, on a free port, and
// waits until /v2/ answers. t.Cleanup stops it (SIGTERM) if the test does not.
func startRegistry(t *testing.T, root string) *registry {
	t.Helper()
	return startRegistryMode(t, root, false)
}

// startRegistryMode is startRegistry, read-only when readOnly; r.cfg is its config.
func startRegistryMode(t *testing.T, root string, readOnly bool) *registry {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r, err := tryStartRegistry(t, root, readOnly)
		if err == nil {
			return r
		}
		// The free port can be taken between choosing and listening: try another.
		if attempt < 3 && strings.Contains(r.log.String(), "address already in use") {
			t.Logf("registry: %v; retrying on another port", err)
			continue
		}
		t.Fatalf("%v\nregistry log:\n%s", err, r.log)
	}
}

func tryStartRegistry(t *testing.T, root string, readOnly bool) (*registry, error) {
	cfg, addr := registryCfgMode(t, root, readOnly)
	r := &registry{addr: addr, cfg: cfg, log: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(registryBin, "serve", cfg)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	if err := r.cmd.Start(); err != nil {
		return r, fmt.Errorf("start %s: %w", registryBin, err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := httpClient.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-r.done:
			return r, fmt.Errorf("registry on %s exited before answering: %v", addr, r.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("registry on %s did not answer /v2/ within 20s (last: %v)", addr, err)
		}
	}
}

// stop sends SIGTERM and waits for the process (SIGKILL after 15s). Idempotent.
func (r *registry) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		t.Errorf("registry on %s ignored SIGTERM for 15s; killing it", r.addr)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

var allManifestTypes = strings.Join([]string{
	v1.MediaTypeImageIndex, v1.MediaTypeImageManifest, mtDockerList, mtDockerManifest,
}, ", ")

// headManifest resolves repo:ref (tag or digest) with HEAD; 0 status means the
// request failed.
func (r *registry) headManifest(t *testing.T, repo, ref string) (int, digest.Digest, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+r.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", allManifestTypes)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s:%s: %v", repo, ref, err)
	}
	resp.Body.Close()
	return resp.StatusCode, digest.Digest(resp.Header.Get("Docker-Content-Digest")), resp.Header.Get("Content-Type")
}

func (r *registry) deleteManifest(t *testing.T, repo, ref string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+r.addr+"/v2/"+repo+"/manifests/"+ref, nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s/manifests/%s: %v", repo, ref, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// skopeoEnv is a private HOME and XDG tree, registries.conf, policy and registries.d,
// so that skopeo (as root too) reads and writes nothing outside it.
type skopeoEnv struct {
	dir  string
	env  []string
	args []string
}

func newSkopeoEnv(t *testing.T) *skopeoEnv {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"home", "config", "data", "cache", "run", "tmp", "registries.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"policy.json":     `{"default":[{"type":"insecureAcceptAnything"}]}`,
		"registries.conf": "unqualified-search-registries = []\n",
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(dir, "run", "storage"), filepath.Join(dir, "data", "storage")),
		"containers.conf": "",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "run"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		// As euid 0, containers/image puts its blob-info cache in
		// /var/lib/containers/cache whatever HOME says. It takes the uid it decides
		// by from this variable (set by rootless podman), so the cache goes under
		// XDG_DATA_HOME above instead.
		"_CONTAINERS_ROOTLESS_UID=65534",
	}
	return &skopeoEnv{dir: dir, env: env, args: []string{
		"--policy", filepath.Join(dir, "policy.json"),
		"--registries.d", filepath.Join(dir, "registries.d"),
		"--tmpdir", filepath.Join(dir, "tmp"),
	}}
}

// copy runs skopeo copy src dst with extra flags; it returns the combined output.
func (s *skopeoEnv) copy(ctx context.Context, flags []string, src, dst string) (string, error) {
	args := append(append(append([]string{}, s.args...), "copy", "--retry-times", "0"), flags...)
	args = append(args, src, dst)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeoBin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("skopeo %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// distGC runs docker-registry garbage-collect on cfg and returns the digests it
// names as eligible for deletion.
type distGCOutput struct {
	blobs     map[digest.Digest]bool
	manifests map[digest.Digest]bool
	raw       string
}

var (
	reBlobEligible     = regexp.MustCompile(`blob eligible for deletion: (\S+)`)
	reManifestEligible = regexp.MustCompile(`manifest eligible for deletion: (\S+)`)
	reSummary          = regexp.MustCompile(`(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion`)
)

func distGC(t *testing.T, cfg string, flags ...string) distGCOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, registryBin, append([]string{"garbage-collect"}, append(flags, cfg)...)...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-registry garbage-collect %v: %v\n%s", flags, err, out)
	}
	o := distGCOutput{blobs: map[digest.Digest]bool{}, manifests: map[digest.Digest]bool{}, raw: string(out)}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	summary := ""
	for sc.Scan() {
		line := sc.Text()
		if m := reBlobEligible.FindStringSubmatch(line); m != nil {
			o.blobs[parseDigest(t, m[1])] = true
		}
		if m := reManifestEligible.FindStringSubmatch(line); m != nil {
			o.manifests[parseDigest(t, m[1])] = true
		}
		if m := reSummary.FindStringSubmatch(line); m != nil {
			summary = m[2]
		}
	}
	if summary == "" {
		t.Fatalf("docker-registry garbage-collect %v printed no summary line; output:\n%s", flags, out)
	}
	if summary != fmt.Sprint(len(o.blobs)) {
		t.Errorf("docker-registry garbage-collect %v: summary says %s blobs eligible, listed %d:\n%s", flags, summary, len(o.blobs), out)
	}
	return o
}

func parseDigest(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(strings.TrimRight(s, ",;"))
	if err != nil {
		t.Fatalf("bad digest %q in docker-registry output: %v", s, err)
	}
	return d
}

// report is the part of regsweep's JSON report the test reads.
type report struct {
	Mode struct {
		DryRun         bool  `json:"dry_run"`
		DeleteUntagged bool  `json:"delete_untagged"`
		GraceSeconds   int64 `json:"grace_seconds"`
	} `json:"mode"`
	Summary struct {
		Repositories     int   `json:"repositories"`
		Tags             int   `json:"tags"`
		Manifests        int   `json:"manifests"`
		Blobs            int   `json:"blobs"`
		BlobBytes        int64 `json:"blob_bytes"`
		LiveBlobs        int   `json:"live_blobs"`
		LiveBytes        int64 `json:"live_bytes"`
		DeleteBlobs      int   `json:"delete_blobs"`
		DeleteBytes      int64 `json:"delete_bytes"`
		DeleteManifests  int   `json:"delete_manifests"`
		DeleteLayerLinks int   `json:"delete_layer_links"`
		DeleteUploads    int   `json:"delete_uploads"`
		KeptByGrace      int   `json:"kept_by_grace"`
		Unreadable       int   `json:"unreadable_manifests"`
	} `json:"summary"`
	Delete struct {
		Blobs []struct {
			Digest digest.Digest `json:"digest"`
			Size   int64         `json:"size"`
		} `json:"blobs"`
		Manifests []struct {
			Repository string        `json:"repository"`
			Digest     digest.Digest `json:"digest"`
		} `json:"manifests"`
		LayerLinks []struct {
			Repository string        `json:"repository"`
			Digest     digest.Digest `json:"digest"`
		} `json:"layer_links"`
	} `json:"delete"`
	Kept []struct {
		Kind       string        `json:"kind"`
		Repository string        `json:"repository"`
		Digest     digest.Digest `json:"digest"`
		Reason     string        `json:"reason"`
	} `json:"kept"`
	Warnings []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
		Path   string `json:"path"`
	} `json:"warnings"`
	Result *struct {
		DeletedManifests  int   `json:"deleted_manifests"`
		DeletedTagIndex   int   `json:"deleted_tag_index"`
		DeletedBlobs      int   `json:"deleted_blobs"`
		DeletedLayerLinks int   `json:"deleted_layer_links"`
		DeletedUploads    int   `json:"deleted_uploads"`
		FreedBytes        int64 `json:"freed_bytes"`
		AlreadyDone       int   `json:"already_done"`
		Missing           int   `json:"missing"`
	} `json:"result"`
	Registry []struct {
		URL   string `json:"url"`
		State string `json:"state"`
	} `json:"registry"`
}

func (r *report) blobSet() map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, b := range r.Delete.Blobs {
		out[b.Digest] = true
	}
	return out
}

// manifestSet is the deleted revision links as "repo@digest".
func (r *report) manifestSet() map[string]bool {
	out := map[string]bool{}
	for _, m := range r.Delete.Manifests {
		out[m.Repository+"@"+m.Digest.String()] = true
	}
	return out
}

func (r *report) linkSet() map[string]bool {
	out := map[string]bool{}
	for _, l := range r.Delete.LayerLinks {
		out[l.Repository+"@"+l.Digest.String()] = true
	}
	return out
}

// regsweep runs the regsweep binary with a fresh --index; it returns the parsed
// JSON report (stdout) and stderr.
func regsweep(t *testing.T, args ...string) (*report, string) {
	t.Helper()
	args = append(append([]string{}, args...), "--index", indexFor(t, args), "-o", "json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, regsweepBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("regsweep %s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("regsweep %s: output is not the JSON report: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return &rep, stderr.String()
}

// indexFor is a fresh index directory for a run of regsweep with args. With
// REGSWEEP_E2E_WARM_INDEX=1 (make e2e runs the suite both ways), a command that reads
// storage gets an index a scan of the same storage just filled: its manifests then
// come from the manifest cache, and every phase must pass all the same.
func indexFor(t *testing.T, args []string) string {
	t.Helper()
	dir := t.TempDir()
	if os.Getenv("REGSWEEP_E2E_WARM_INDEX") == "" || len(args) < 2 {
		return dir
	}
	switch args[0] {
	case "gc", "apply", "verify", "inspect":
	default:
		return dir
	}
	out, err := exec.Command(regsweepBin, "scan", args[1], "--index", dir, "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("warm the index: regsweep scan %s: %v\n%s", args[1], err, out)
	}
	return dir
}

// regsweepExit runs the regsweep binary with a fresh --index and returns its exit
// code, stdout and stderr.
func regsweepExit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	args = append(append([]string{}, args...), "--index", indexFor(t, args), "-o", "json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, regsweepBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("regsweep %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

// v2 is the root of the registry layout under a filesystem storage root.
func v2(root string) string { return filepath.Join(root, "docker", "registry", "v2") }

// blobFiles lists blobs/sha256/xx/<hex>/data with their sizes.
func blobFiles(t *testing.T, root string) map[digest.Digest]int64 {
	t.Helper()
	out := map[digest.Digest]int64{}
	base := filepath.Join(v2(root), "blobs", "sha256")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "data" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(filepath.Dir(p)))] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatalf("list blobs: %v", err)
	}
	return out
}

// links lists files named link under repositories whose path contains kind
// ("/_layers/", "/_manifests/revisions/"), as "repo@digest".
func links(t *testing.T, root, kind string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	base := filepath.Join(v2(root), "repositories")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() || d.Name() != "link" || !strings.Contains(rel, kind) {
			return nil
		}
		repo := rel[:strings.Index(rel, kind)]
		hex := filepath.Base(filepath.Dir(p))
		out[repo+"@sha256:"+hex] = true
		return nil
	})
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	return out
}

// tagLinks lists repositories/<repo>/_manifests/tags/<tag>/current/link as
// "repo:tag" -> digest.
func tagLinks(t *testing.T, root string) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	base := filepath.Join(v2(root), "repositories")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		repo, rest, ok := strings.Cut(rel, "/_manifests/tags/")
		if d.IsDir() || !ok || !strings.HasSuffix(rest, "/current/link") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[repo+":"+strings.TrimSuffix(rest, "/current/link")] = digest.Digest(strings.TrimSpace(string(b)))
		return nil
	})
	if err != nil {
		t.Fatalf("list tags: %v", err)
	}
	return out
}

// tagIndexLinks lists the tag history entries
// repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link as "repo:tag@digest".
func tagIndexLinks(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	base := filepath.Join(v2(root), "repositories")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		repo, rest, ok := strings.Cut(filepath.ToSlash(rel), "/_manifests/tags/")
		if d.IsDir() || !ok {
			return nil
		}
		tag, rest, ok := strings.Cut(rest, "/index/sha256/")
		if !ok || !strings.HasSuffix(rest, "/link") {
			return nil
		}
		out[repo+":"+tag+"@sha256:"+strings.TrimSuffix(rest, "/link")] = true
		return nil
	})
	if err != nil {
		t.Fatalf("list tag history: %v", err)
	}
	return out
}

// copyTree copies a storage root, keeping modes and modification times.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	type dirTime struct {
		path string
		mt   time.Time
	}
	var dirs []dirTime
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, dirTime{target, fi.ModTime()})
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].mt, dirs[i].mt); err != nil {
			t.Fatal(err)
		}
	}
}

// setDiff returns the sorted elements of a that are not in b.
func setDiff[K comparable](a, b map[K]bool) []K {
	var out []K
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func sameSet[K comparable](a, b map[K]bool) bool {
	return len(setDiff(a, b)) == 0 && len(setDiff(b, a)) == 0
}
