package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	"github.com/sirupsen/logrus"
)

// registryApp serves root with distribution's own registry application, in
// process, and returns a config for regsweep that names its address.
func registryApp(t *testing.T, root string, readOnly bool, extra string) (cfgPath string, srv *httptest.Server) {
	t.Helper()
	logrus.SetLevel(logrus.PanicLevel) // the registry logs every request
	// No upload purging: its first run comes after a random 0-59 minutes, and at 0
	// it would delete the sample's old upload while a test counts them.
	y := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + root + "\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n"
	if readOnly {
		y += "    readonly:\n      enabled: true\n"
	}
	y += extra
	cfg, err := configuration.Parse(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	app := handlers.NewApp(context.Background(), cfg)
	srv = httptest.NewServer(app)
	t.Cleanup(srv.Close)
	cfgPath = filepath.Join(t.TempDir(), "config.yml")
	y += "http:\n  addr: " + strings.TrimPrefix(srv.URL, "http://") + "\n"
	if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, srv
}

func uploadsLeft(t *testing.T, root string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/*/*/_uploads/*"))
	m2, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/*/*/*/_uploads/*"))
	return append(m, m2...)
}

func registryState(t *testing.T, out string) string {
	t.Helper()
	var rep struct {
		Registry []struct{ State string }    `json:"registry"`
		Result   *struct{ DeletedBlobs int } `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Registry) == 0 {
		t.Fatalf("report %q: %v", out, err)
	}
	return rep.Registry[0].State
}

// A real sweep refuses while the registry serving the storage accepts pushes, and
// goes on when it is read-only, stopped, or the operator opts out.
func TestRegistryProbe(t *testing.T) {
	cfg := sampleConfig(t)
	root := filepath.Join(filepath.Dir(cfg), "registry")
	before := uploadsLeft(t, root)

	writable, _ := registryApp(t, root, false, "")
	for _, args := range [][]string{{"gc", writable, "-q"}, {"gc", writable, "-m", "-q"}} {
		_, err := run(t, append(args, "--index", t.TempDir())...)
		var ce *codeError
		if !errors.As(err, &ce) || ce.code != exitWritable || !strings.Contains(err.Error(), "maintenance.readonly") {
			t.Fatalf("%v against a writable registry: err = %v, want exit 4 naming maintenance.readonly", args, err)
		}
	}
	if got := uploadsLeft(t, root); len(got) != len(before) {
		t.Errorf("the probe left uploads behind: %v (before: %v)", got, before)
	}
	// A dry run deletes nothing: no probe.
	if _, err := run(t, "gc", writable, "-d", "-q", "--index", t.TempDir()); err != nil {
		t.Errorf("dry run: %v", err)
	}
	// Opting out is said in the report.
	out, err := run(t, "gc", writable, "-d", "-q", "-o", "json", "--index", t.TempDir(), "--registry-url", "none")
	if err != nil || strings.Contains(out, `"registry"`) {
		t.Errorf("a dry run reports a probe: %v %s", err, out)
	}

	readonly, _ := registryApp(t, root, true, "")
	out, err = run(t, "gc", readonly, "-q", "-o", "json", "--index", t.TempDir())
	if err != nil {
		t.Fatalf("read-only registry: %v", err)
	}
	if s := registryState(t, out); s != "read-only" {
		t.Errorf("state = %q, want read-only", s)
	}

	// Nothing listening at the configured address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stopped := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(stopped, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+root+"\nhttp:\n  addr: "+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "gc", stopped, "-q", "-o", "json", "--index", t.TempDir())
	if err != nil || registryState(t, out) != "not listening" {
		t.Errorf("stopped registry: %v, %s", err, out)
	}
	// --registry-url none: skipped, and said so.
	out, err = run(t, "gc", writable, "-q", "-o", "json", "--index", t.TempDir(), "--registry-url", "none")
	if err != nil || registryState(t, out) != "skipped" {
		t.Errorf("--registry-url none: %v, %s", err, out)
	}
	// --registry-url names the registry when the config does not.
	_, err = run(t, "gc", cfg, "-q", "--index", t.TempDir(), "--registry-url", "http://"+strings.TrimPrefix(readFileField(t, writable), ""))
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != exitWritable {
		t.Errorf("--registry-url of a writable registry: err = %v, want exit 4", err)
	}
}

// readFileField returns the http.addr of a config registryApp wrote.
func readFileField(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := strings.Cut(string(b), "addr: ")
	return strings.TrimSpace(addr)
}

// With authentication, the probe needs a user's credentials; without them it cannot
// tell, and refuses.
func TestRegistryProbeAuthenticated(t *testing.T) {
	cfg := sampleConfig(t)
	root := filepath.Join(filepath.Dir(cfg), "registry")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ops:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := "auth:\n  htpasswd:\n    realm: test\n    path: " + htpasswd + "\n"
	for _, mode := range []struct {
		readOnly bool
		want     string
	}{{false, "writable"}, {true, "read-only"}} {
		c, _ := registryApp(t, root, mode.readOnly, auth)
		t.Setenv("REGSWEEP_REGISTRY_USERNAME", "")
		t.Setenv("REGSWEEP_REGISTRY_PASSWORD", "")
		_, err := run(t, "gc", c, "-q", "--index", t.TempDir())
		var ce *codeError
		if !errors.As(err, &ce) || ce.code != exitWritable || !strings.Contains(err.Error(), "REGSWEEP_REGISTRY_PASSWORD") {
			t.Errorf("%s without credentials: err = %v, want exit 4 asking for them", mode.want, err)
		}
		t.Setenv("REGSWEEP_REGISTRY_USERNAME", "ops")
		t.Setenv("REGSWEEP_REGISTRY_PASSWORD", "s3cret")
		out, err := run(t, "gc", c, "-q", "-o", "json", "--index", t.TempDir())
		if mode.want == "writable" {
			if !errors.As(err, &ce) || ce.code != exitWritable {
				t.Errorf("writable with credentials: err = %v, want exit 4", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Error("the password is in the error")
			}
			continue
		}
		if err != nil || registryState(t, out) != "read-only" {
			t.Errorf("read-only with credentials: %v, %s", err, out)
		}
		if strings.Contains(out, "s3cret") {
			t.Error("the password is in the report")
		}
	}
}

var _ http.Handler = (*handlers.App)(nil)
