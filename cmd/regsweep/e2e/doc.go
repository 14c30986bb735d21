// Package e2e runs regsweep against storage written by a real registry: Debian's
// docker-registry (distribution 2.8.2) serves it, skopeo pushes images built here
// (OCI and Docker schema2, layers shared across images and repositories, a layer
// chain, an OCI index, a Docker manifest list, OCI 1.1 referrers), tags are
// overwritten and manifests deleted through the registry API, and then
// docker-registry garbage-collect and regsweep gc run on copies of that storage. The
// delete lists are compared with each other and with what the test knows it pushed,
// in both modes and with 1 and 64 workers; the known differences from 2.8.2 under
// --delete-untagged are asserted exactly. After each real regsweep sweep the
// registry must serve every remaining tag and manifest, which skopeo pulls (checking
// every digest), the blobs gone must be exactly those only deleted manifests
// referenced, and result.freed_bytes must be what the filesystem lost.
//
// Run with `make e2e`. It needs docker-registry and skopeo on PATH (apt-get install
// docker-registry skopeo); without them it skips, unless CI=true, where it fails.
package e2e
