//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// inspectRaw returns the digest of the manifest skopeo inspect --raw reads for ref:
// what a client gets by tag.
func (s *skopeoEnv) inspectRaw(t *testing.T, ref string) (digest.Digest, string) {
	t.Helper()
	args := append(append([]string{}, s.args...), "inspect", "--raw", "--tls-verify=false", ref)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeoBin, args...)
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	json.Unmarshal(out, &head)
	return digest.FromBytes(out), head.MediaType
}

// inspectMatchesSkopeo: for a Docker schema2 image, an OCI image, an OCI index and a
// Docker manifest list, regsweep inspect gives the digest of the bytes skopeo
// inspect --raw reads through the registry (sha256 of them), their media type, the
// tags of that digest, and for an index the children's digests.
func inspectMatchesSkopeo(t *testing.T, s *scenario) {
	cfg, _ := registryCfg(t, s.root)
	reg := startRegistry(t, s.root)
	defer reg.stop(t)
	for _, c := range []struct {
		repo, tag string
		m         *manifest
		tags      []string
	}{
		{"legacy/docker", "v1", nil, []string{"v1"}},
		{"chain", "b", s.chain[1], []string{"b"}},
		{"team/app", "v1", nil, []string{"stable", "v1"}}, // one image, two tags
		{"multi", "latest", s.multi, []string{"latest"}},
		{"legacy/list", "latest", s.list, []string{"latest"}},
	} {
		want, mt := s.sk.inspectRaw(t, "docker://"+reg.addr+"/"+c.repo+":"+c.tag)
		code, out, stderr := regsweepExit(t, "inspect", cfg, c.repo+":"+c.tag)
		if code != 0 {
			t.Errorf("inspect %s:%s: exit %d\n%s", c.repo, c.tag, code, stderr)
			continue
		}
		var in struct {
			Digest    digest.Digest `json:"digest"`
			MediaType string        `json:"media_type"`
			Tags      []string      `json:"tags"`
			Platforms []struct {
				Platform string        `json:"platform"`
				Digest   digest.Digest `json:"digest"`
			} `json:"platforms"`
			GC []struct {
				Mode string `json:"mode"`
				Kept bool   `json:"kept"`
			} `json:"gc"`
		}
		if err := json.Unmarshal([]byte(out), &in); err != nil {
			t.Fatalf("inspect output: %v\n%s", err, out)
		}
		if in.Digest != want || in.MediaType != mt || !slices.Equal(in.Tags, c.tags) {
			t.Errorf("inspect %s:%s: digest %s %q tags %v; skopeo inspect --raw | sha256sum gives %s %q, tags %v", c.repo, c.tag, in.Digest, in.MediaType, in.Tags, want, mt, c.tags)
		}
		if c.m != nil && c.m.isIndex() {
			var got, wantKids []string
			for _, p := range in.Platforms {
				got = append(got, p.Digest.String())
				if !strings.HasPrefix(p.Platform, "linux/") {
					t.Errorf("%s:%s child %s: platform %q", c.repo, c.tag, p.Digest, p.Platform)
				}
			}
			for _, k := range c.m.children {
				wantKids = append(wantKids, k.digest.String())
			}
			if !slices.Equal(got, wantKids) {
				t.Errorf("%s:%s platforms %v, pushed children %v", c.repo, c.tag, got, wantKids)
			}
		}
		if len(in.GC) != 2 || !in.GC[0].Kept || !in.GC[1].Kept {
			t.Errorf("%s:%s: gc verdicts %+v, want kept in both modes", c.repo, c.tag, in.GC)
		}
	}
	// By digest, an untagged manifest: no tags, and gc -m deletes it.
	code, out, stderr := regsweepExit(t, "inspect", cfg, "team/app@"+s.appX1.digest.String(), "--grace", "0")
	var un struct {
		Digest digest.Digest `json:"digest"`
		Tags   []string      `json:"tags"`
		GC     []struct {
			Mode string `json:"mode"`
			Kept bool   `json:"kept"`
		} `json:"gc"`
	}
	if err := json.Unmarshal([]byte(out), &un); code != 0 || err != nil {
		t.Fatalf("inspect team/app@%s: exit %d, %v\n%s", s.appX1.digest, code, err, stderr)
	}
	if un.Digest != s.appX1.digest || len(un.Tags) != 0 || len(un.GC) != 2 || !un.GC[0].Kept || un.GC[1].Kept {
		t.Errorf("inspect team/app@%s (untagged): %+v; want no tags, kept by default GC, deleted by -m", s.appX1.digest, un)
	}
	if code, _, _ := regsweepExit(t, "inspect", cfg, "team/app:no-such-tag"); code != 2 {
		t.Errorf("an unknown tag: exit %d, want 2", code)
	}
}
