package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// content returns n bytes of text naming what they are: compressible for git, and a
// size that shows in reports.
func content(name string, n int) string {
	line := fmt.Sprintf("%s: %s\n", name, strings.Repeat("·", 40))
	return strings.Repeat(line, n/len(line)+1)[:n]
}

const kib = 1024

// runBuilds writes a CI registry: builds of an API, release tags naming some of the
// builds, a signature, branch images of a web app, alpine releases, and tools no
// policy covers. Push times are set by the demo from testdata/builds/pushed.tsv.
func runBuilds(ctx context.Context, dir string) error {
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return err
	}
	p := &pusher{ctx: ctx, ns: ns}
	base := content("debian bookworm rootfs", 256*kib)
	runtime := content("python 3.12 runtime", 128*kib)

	// team/app/api: build-100 was latest once; it is untagged now (latest moved on).
	if err := p.use("team/app/api"); err != nil {
		return err
	}
	if _, err := p.image(true, "api-build-100", []string{base, runtime, content("api build 100", 48*kib)}, "latest"); err != nil {
		return err
	}
	builds := map[int]v1.Descriptor{}
	for n := 101; n <= 112; n++ {
		d, err := p.image(true, fmt.Sprintf("api-build-%d", n), []string{base, runtime, content(fmt.Sprintf("api build %d", n), 48*kib)}, fmt.Sprintf("build-%d", n))
		if err != nil {
			return err
		}
		builds[n] = d
	}
	// Releases are builds tagged again.
	for tag, n := range map[string]int{"v1.0.0": 102, "v1.1.0": 104, "v1.2.0": 106, "v1.3.0": 107, "v1.4.0": 108,
		"v1.5.0": 109, "v1.6.0": 110, "v2.0.0-rc.1": 111, "stable": 110, "latest": 112} {
		if err := p.repo.Tags(ctx).Tag(ctx, tag, builds[n]); err != nil {
			return err
		}
	}
	// A signature of v1.6.0 (an untagged referrer: it stays while its image does).
	empty, err := p.blob(v1.MediaTypeEmptyJSON, "{}")
	if err != nil {
		return err
	}
	sig, err := p.blob("application/vnd.dev.cosign.simplesigning.v1+json", `{"critical":{"image":{"docker-manifest-digest":"`+builds[110].Digest.String()+`"}}}`)
	if err != nil {
		return err
	}
	subject := builds[110]
	if _, err := p.oci(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", Config: empty, Layers: []v1.Descriptor{sig}, Subject: &subject}, ""); err != nil {
		return err
	}

	// team/web: branch and pull request images.
	if err := p.use("team/web"); err != nil {
		return err
	}
	for _, tag := range []string{"main", "dev-abc", "dev-def", "feature-x", "pr-17", "pr-18"} {
		if _, err := p.image(false, "web-"+tag, []string{base, content("web assets "+tag, 32*kib)}, tag); err != nil {
			return err
		}
	}

	// library/alpine: releases; latest is 3.20 tagged again.
	if err := p.use("library/alpine"); err != nil {
		return err
	}
	var last v1.Descriptor
	for _, tag := range []string{"3.18", "3.19", "3.20", "edge"} {
		d, err := p.image(true, "alpine-"+tag, []string{content("alpine "+tag+" rootfs", 96*kib)}, tag)
		if err != nil {
			return err
		}
		if tag == "3.20" {
			last = d
		}
	}
	if err := p.repo.Tags(ctx).Tag(ctx, "latest", last); err != nil {
		return err
	}

	// other/tools: no policy covers it.
	if err := p.use("other/tools"); err != nil {
		return err
	}
	for _, tag := range []string{"old-1", "old-2"} {
		if _, err := p.image(false, "tools-"+tag, []string{content("tools "+tag, 16*kib)}, tag); err != nil {
			return err
		}
	}
	return nil
}
