// Package probe asks a running registry whether it accepts writes. A sweep is only
// safe while nothing pushes: a push that reuses a blob or manifest already stored
// writes no new file, so no grace period can see it. The probe starts a blob upload
// and cancels it at once: a registry in maintenance.readonly answers 405, one that
// accepts pushes answers 202.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
)

// State is what a probe found.
type State string

// States. Writable and Unknown stop a sweep; the others let it go on.
const (
	Writable     State = "writable"      // a blob upload could be started
	ReadOnly     State = "read-only"     // /v2/ answers, uploads are refused with 405
	NotListening State = "not listening" // nothing accepts connections there
	NotRegistry  State = "not a registry"
	Unknown      State = "unknown" // could not tell: authentication, TLS, errors
	Skipped      State = "skipped" // --registry-url none
)

// Blocks reports whether a sweep must not go on.
func (s State) Blocks() bool { return s == Writable || s == Unknown }

// Result is one probed address.
type Result struct {
	URL    string `json:"url"`
	State  State  `json:"state"`
	Detail string `json:"detail,omitempty"`
	// Upload is the id of the upload the probe started, when one was: distribution
	// cancels it but then writes its hash state again, leaving a directory behind.
	Upload string `json:"-"`
}

// Credentials authenticate the probe; a registry with authentication needs a user
// that may push, or the probe cannot tell.
type Credentials struct {
	Username, Password string
}

// Target is an address to probe and how to reach it.
type Target struct {
	URL    *url.URL // base URL; /v2/ is appended
	Client *http.Client
}

// Targets derives the addresses a registry config serves on: http.addr (a
// wildcard host becomes loopback), with http.prefix, over TLS when the config has a
// certificate; and http.host, the registry's public URL, when set.
func Targets(cfg *configuration.Configuration, timeout time.Duration) ([]Target, error) {
	h := cfg.HTTP
	tlsOn := h.TLS.Certificate != "" || len(h.TLS.LetsEncrypt.Hosts) > 0
	var pub *url.URL
	if h.Host != "" {
		u, err := url.Parse(h.Host)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("http.host %q in the registry config is not a URL", h.Host)
		}
		pub = u
	}
	tc := &tls.Config{}
	if pub != nil {
		tc.ServerName = pub.Hostname()
	}
	if h.TLS.Certificate != "" {
		// The registry's own certificate, trusted beside the system's roots, so
		// that a self-signed one verifies.
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(h.TLS.Certificate); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tc.RootCAs = pool
	}
	var out []Target
	if h.Addr != "" {
		dialer := &net.Dialer{Timeout: timeout}
		tr := &http.Transport{TLSClientConfig: tc, DialContext: dialer.DialContext, Proxy: nil}
		host := h.Addr
		if h.Net == "unix" {
			sock := h.Addr
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dialer.DialContext(ctx, "unix", sock) }
			host = "localhost"
		} else if hh, port, err := net.SplitHostPort(h.Addr); err == nil {
			if ip := net.ParseIP(hh); hh == "" || ip != nil && ip.IsUnspecified() {
				hh = "127.0.0.1"
				if ip != nil && ip.To4() == nil {
					hh = "::1"
				}
			}
			host = net.JoinHostPort(hh, port)
		}
		scheme := "http"
		if tlsOn {
			scheme = "https"
		}
		out = append(out, Target{URL: &url.URL{Scheme: scheme, Host: host, Path: strings.TrimSuffix(h.Prefix, "/") + "/"}, Client: &http.Client{Transport: tr, Timeout: timeout}})
	}
	if pub != nil {
		u := *pub
		u.Path = strings.TrimSuffix(u.Path, "/") + "/"
		if h.Prefix != "" && !strings.HasPrefix(u.Path, strings.TrimSuffix(h.Prefix, "/")+"/") {
			u.Path = strings.TrimSuffix(h.Prefix, "/") + "/"
		}
		out = append(out, Target{URL: &u, Client: &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}, Timeout: timeout}})
	}
	return out, nil
}

// URLTarget is a target given by the operator (--registry-url).
func URLTarget(raw string, timeout time.Duration) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return Target{}, fmt.Errorf("--registry-url %q: want http(s)://host[:port][/prefix], or none", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v2") + "/"
	return Target{URL: u, Client: &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}}, nil
}

// Probe asks t whether it accepts writes, starting (and cancelling) an upload to
// repo, a repository that already exists so that nothing new is created.
func Probe(ctx context.Context, t Target, repo string, creds Credentials) Result {
	base := t.URL.String()
	r := Result{URL: base}
	v2 := base + "v2/"
	a := &authorizer{client: t.Client, creds: creds, scope: "repository:" + repo + ":pull,push"}
	resp, err := a.do(ctx, http.MethodGet, v2)
	if err != nil {
		if isRefused(err) {
			r.State, r.Detail = NotListening, "nothing accepts connections"
			return r
		}
		r.State, r.Detail = Unknown, err.Error()
		return r
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		r.State = Unknown
		r.Detail = fmt.Sprintf("GET /v2/ answers %s: give credentials of a user that may push (REGSWEEP_REGISTRY_USERNAME and REGSWEEP_REGISTRY_PASSWORD)", resp.Status)
		if creds.Username != "" {
			r.Detail = fmt.Sprintf("GET /v2/ answers %s with the credentials given", resp.Status)
		}
		return r
	default:
		if resp.Header.Get("Docker-Distribution-Api-Version") == "" {
			r.State, r.Detail = NotRegistry, fmt.Sprintf("GET /v2/ answers %s without a Docker-Distribution-Api-Version header", resp.Status)
			return r
		}
		r.State, r.Detail = Unknown, fmt.Sprintf("GET /v2/ answers %s", resp.Status)
		return r
	}
	resp, err = a.do(ctx, http.MethodPost, v2+repo+"/blobs/uploads/")
	if err != nil {
		r.State, r.Detail = Unknown, err.Error()
		return r
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted:
		r.State, r.Detail, r.Upload = Writable, "a blob upload to "+repo+" was accepted", resp.Header.Get("Docker-Upload-UUID")
		if loc := resp.Header.Get("Location"); loc != "" {
			if err := a.cancel(ctx, v2, loc); err != nil {
				r.Detail += "; cancelling it failed (" + err.Error() + "): remove its _uploads directory or let a later run delete it"
			} else {
				r.Detail += " (and cancelled)"
			}
		}
	case http.StatusMethodNotAllowed:
		r.State, r.Detail = ReadOnly, "uploads answer 405 Method Not Allowed"
	default:
		r.State, r.Detail = Unknown, fmt.Sprintf("starting a blob upload to %s answers %s", repo, resp.Status)
	}
	return r
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) && errors.As(err, &op)
}

// authorizer sends requests with Basic credentials or a Bearer token, as the
// registry's WWW-Authenticate challenge asks.
type authorizer struct {
	client *http.Client
	creds  Credentials
	scope  string
	header string // Authorization, once known
}

func (a *authorizer) do(ctx context.Context, method, u string) (*http.Response, error) {
	resp, err := a.send(ctx, method, u)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || a.creds.Username == "" || a.header != "" {
		return resp, err
	}
	resp.Body.Close()
	if err := a.answer(ctx, resp.Header.Get("WWW-Authenticate")); err != nil {
		return nil, err
	}
	return a.send(ctx, method, u)
}

func (a *authorizer) send(ctx context.Context, method, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if a.header != "" {
		req.Header.Set("Authorization", a.header)
	}
	return a.client.Do(req)
}

// answer sets the Authorization header a challenge asks for.
func (a *authorizer) answer(ctx context.Context, challenge string) error {
	scheme, params := parseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(a.creds.Username, a.creds.Password)
		a.header = req.Header.Get("Authorization")
		return nil
	case "bearer":
		realm, err := url.Parse(params["realm"])
		if err != nil || realm.Host == "" {
			return fmt.Errorf("bearer challenge without a usable realm: %q", challenge)
		}
		q := realm.Query()
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		q.Set("scope", a.scope)
		realm.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(a.creds.Username, a.creds.Password)
		resp, err := a.client.Do(req)
		if err != nil {
			return fmt.Errorf("token from %s: %w", realm.Host, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("token from %s answers %s", realm.Host, resp.Status)
		}
		var tok struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
			return fmt.Errorf("token from %s: %w", realm.Host, err)
		}
		t := tok.Token
		if t == "" {
			t = tok.AccessToken
		}
		if t == "" {
			return fmt.Errorf("token from %s: empty", realm.Host)
		}
		a.header = "Bearer " + t
		return nil
	}
	return fmt.Errorf("unsupported authentication challenge %q", challenge)
}

// parseChallenge splits `Bearer realm="...",service="..."` into its scheme and
// parameters.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k], rest = v[1:end+1], v[end+2:]
		} else {
			val, next, _ := strings.Cut(v, ",")
			params[k], rest = strings.TrimSpace(val), next
		}
		rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ","))
	}
	return scheme, params
}

// cancel deletes the upload a probe started.
func (a *authorizer) cancel(ctx context.Context, v2, loc string) error {
	u, err := url.Parse(v2)
	if err != nil {
		return err
	}
	l, err := u.Parse(loc) // Location may be relative
	if err != nil {
		return err
	}
	// It may name the registry's public host: cancel where the upload was started.
	l.Scheme, l.Host = u.Scheme, u.Host
	resp, err := a.send(ctx, http.MethodDelete, l.String())
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE %s answers %s", l.Path, resp.Status)
	}
	return nil
}
