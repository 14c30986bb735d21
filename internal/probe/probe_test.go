package probe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/google/go-cmp/cmp"
)

func TestParseChallenge(t *testing.T) {
	for _, c := range []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Basic realm="Registry Realm"`, "Basic", map[string]string{"realm": "Registry Realm"}},
		{`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"`, "Bearer",
			map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull"}},
		{`Bearer realm=https://a/t, service=reg`, "Bearer", map[string]string{"realm": "https://a/t", "service": "reg"}},
	} {
		scheme, params := parseChallenge(c.in)
		if scheme != c.scheme || !cmp.Equal(params, c.params) {
			t.Errorf("parseChallenge(%q) = %q %v, want %q %v", c.in, scheme, params, c.scheme, c.params)
		}
	}
}

// A registry behind a token server: the probe fetches a token for pull and push on
// the repository with the credentials and starts (and cancels) an upload with it.
func TestProbeBearerToken(t *testing.T) {
	var tokenScope string
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "ops" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tokenScope = r.URL.Query().Get("scope")
		json.NewEncoder(w).Encode(map[string]string{"token": "T0K"})
	}))
	defer tokens.Close()
	var cancelled bool
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		if r.Header.Get("Authorization") != "Bearer T0K" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v2/":
		case r.Method == http.MethodPost && r.URL.Path == "/v2/team/app/blobs/uploads/":
			w.Header().Set("Location", "https://registry.example.com/v2/team/app/blobs/uploads/abc?_state=x")
			w.Header().Set("Docker-Upload-UUID", "abc")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodDelete && r.URL.Path == "/v2/team/app/blobs/uploads/abc":
			cancelled = true
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer reg.Close()
	target, err := URLTarget(reg.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := Probe(context.Background(), target, "team/app", Credentials{"ops", "pw"})
	if r.State != Writable || r.Upload != "abc" || !cancelled {
		t.Errorf("result %+v, cancelled %v; want writable and the upload cancelled where it was started", r, cancelled)
	}
	if tokenScope != "repository:team/app:pull,push" {
		t.Errorf("token scope %q", tokenScope)
	}
	if r := Probe(context.Background(), target, "team/app", Credentials{"ops", "wrong"}); r.State != Unknown {
		t.Errorf("wrong password: %+v, want unknown", r)
	}
	if r := Probe(context.Background(), target, "team/app", Credentials{}); r.State != Unknown || !strings.Contains(r.Detail, "REGSWEEP_REGISTRY_PASSWORD") {
		t.Errorf("no credentials: %+v, want unknown asking for them", r)
	}
}

// What a config says, where the probe goes.
func TestTargets(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{"http:\n  addr: :5000\n", []string{"http://127.0.0.1:5000/"}},
		{"http:\n  addr: 0.0.0.0:5000\n  prefix: /registry\n", []string{"http://127.0.0.1:5000/registry/"}},
		{"http:\n  addr: '[::]:5000'\n", []string{"http://[::1]:5000/"}},
		{"http:\n  addr: 10.1.2.3:443\n  host: https://registry.example.com\n  tls:\n    certificate: /nonexistent.crt\n    key: /nonexistent.key\n",
			[]string{"https://10.1.2.3:443/", "https://registry.example.com/"}},
		{"http:\n  net: unix\n  addr: /run/registry.sock\n", []string{"http://localhost/"}},
		{"", nil},
	} {
		cfg, err := configuration.Parse(strings.NewReader("version: 0.1\nstorage:\n  inmemory: {}\n" + c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		ts, err := Targets(cfg, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range ts {
			got = append(got, x.URL.String())
		}
		if !cmp.Equal(got, c.want) {
			t.Errorf("%q: targets %v, want %v", c.yaml, got, c.want)
		}
	}
	if _, err := URLTarget("registry:5000", time.Second); err == nil {
		t.Error("URLTarget accepted a URL without scheme")
	}
	if tg, _ := URLTarget("http://r:5000/v2/", time.Second); tg.URL.String() != (&url.URL{Scheme: "http", Host: "r:5000", Path: "/"}).String() {
		t.Errorf("URLTarget kept /v2/: %s", tg.URL)
	}
}
