package storage

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzCheckLink: whatever a link file holds, checkLink never panics, and sets a
// target only when it is a valid digest that agrees with the path, warning
// otherwise: a link never names something other than what it says.
func FuzzCheckLink(f *testing.F) {
	d := digest.FromString("x")
	f.Add([]byte(d), string(d))
	f.Add([]byte(d+"\n"), string(d))
	f.Add([]byte(" "+d), "")
	f.Add([]byte("sha256:zz"), string(d))
	f.Add([]byte(digest.FromString("y")), string(d))
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, b []byte, path string) {
		e := Entry{Digest: digest.Digest(path)}
		checkLink(&e, b, nil)
		if e.Target != "" {
			if err := e.Target.Validate(); err != nil {
				t.Fatalf("target %q of %q is not a valid digest", e.Target, b)
			}
			if !strings.Contains(string(b), e.Target.String()) {
				t.Fatalf("target %q is not what the link holds (%q)", e.Target, b)
			}
		}
		if e.Target == "" && e.Warning == "" {
			t.Fatalf("%q gives no target and no warning", b)
		}
		if path != "" && e.Target != "" && e.Target != e.Digest && e.Warning == "" {
			t.Fatalf("link %q disagrees with its path %q without a warning", b, path)
		}
		e2 := Entry{}
		checkLink(&e2, b, errors.New("read failed"))
		if e2.Target != "" || e2.Warning == "" {
			t.Fatalf("a failed read gives target %q, warning %q", e2.Target, e2.Warning)
		}
	})
}

// FuzzLocate: any path below the root has a place; a single thing's place names
// it with a spec Path accepts, below the path given.
func FuzzLocate(f *testing.F) {
	hex := strings.Repeat("ab", 32)
	for _, p := range []string{
		Root + "/blobs/sha256/ab/" + hex, Root + "/blobs/sha256/ab/" + hex + "/data", Root + "/blobs/sha256",
		Root + "/repositories/a/b", Root + "/repositories/a/_manifests/revisions/sha256/" + hex + "/link",
		Root + "/repositories/a/_manifests/tags/t/current", Root + "/repositories/a/_manifests/tags/t/index/sha256/" + hex,
		Root + "/repositories/a/_layers/sha256/" + hex, Root + "/repositories/a/_uploads/u/data", Root + "/repositories/_x",
		Root + "/repositories/a/_manifests", Root, "/", "",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		place, s := Locate(p)
		if place != PlaceOne {
			return
		}
		q, err := Path(s)
		if err != nil {
			t.Fatalf("Locate(%q) = one %+v, which Path refuses: %v", p, s, err)
		}
		// The thing named is at or above the path (a file or directory in it).
		dir := strings.TrimSuffix(strings.TrimSuffix(q, "/link"), "/data")
		if s.Kind == TagCurrentLink {
			dir = strings.TrimSuffix(q, "/current/link")
		}
		if !strings.HasPrefix(path.Clean(p)+"/", dir+"/") {
			t.Fatalf("Locate(%q) names %q, not at or above it", p, q)
		}
	})
}
