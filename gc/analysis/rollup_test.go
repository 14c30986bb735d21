package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// diskReg reads a registry's files, independently of the index.
type diskReg struct {
	t    *testing.T
	root string
}

func (r diskReg) size(d digest.Digest) (int64, bool) {
	fi, err := os.Stat(regtest.FSPath(r.root, regtest.Path(r.t, storage.Spec{Kind: storage.BlobData, Digest: d})))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// closure adds to out every present digest manifest d needs: itself, config, layers,
// children's.
func (r diskReg) closure(d digest.Digest, out map[digest.Digest]int64) {
	if _, done := out[d]; done {
		return
	}
	s, ok := r.size(d)
	if !ok {
		return
	}
	out[d] = s
	var m struct {
		Config *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
	}
	json.Unmarshal(regtest.ReadBlob(r.t, r.root, d), &m)
	var leaves []digest.Digest
	if m.Config != nil {
		leaves = append(leaves, m.Config.Digest)
	}
	for _, l := range m.Layers {
		leaves = append(leaves, l.Digest)
	}
	for _, l := range leaves {
		if s, ok := r.size(l); ok {
			out[l] = s
		}
	}
	for _, c := range m.Manifests {
		r.closure(c.Digest, out)
	}
}

// links lists the repository's tags (tag -> digest, time) and revisions (digest ->
// time) from the files.
func (r diskReg) links() (tags map[string]map[string]digest.Digest, revs map[string]map[digest.Digest]bool, last map[string]time.Time) {
	tags, revs, last = map[string]map[string]digest.Digest{}, map[string]map[digest.Digest]bool{}, map[string]time.Time{}
	for _, f := range regtest.Files(r.t, r.root) {
		s, err := storage.Parse("/" + f)
		if err != nil {
			continue
		}
		fi, _ := os.Stat(regtest.FSPath(r.root, "/"+f))
		switch s.Kind {
		case storage.TagCurrentLink:
			if tags[s.Repo] == nil {
				tags[s.Repo] = map[string]digest.Digest{}
			}
			b, _ := os.ReadFile(regtest.FSPath(r.root, "/"+f))
			tags[s.Repo][s.Tag] = digest.Digest(b)
		case storage.RevisionLink:
			if revs[s.Repo] == nil {
				revs[s.Repo] = map[digest.Digest]bool{}
			}
			revs[s.Repo][s.Digest] = true
		default:
			continue
		}
		if fi.ModTime().After(last[s.Repo]) {
			last[s.Repo] = fi.ModTime()
		}
	}
	return tags, revs, last
}

// Per tag, per namespace and per repository's last push, against the files.
func TestCapacityTagsAndNamespaces(t *testing.T) {
	roots := map[string]string{"sample": regtest.Sample(t)}
	for seed := int64(1); seed <= 3; seed++ {
		root := t.TempDir()
		_, ns, err := synth.NewFilesystem(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		cfg := synth.Small()
		cfg.Repos = 6 // names nest (team0/svc1, app0/sub3): several namespaces
		if _, err := synth.Populate(context.Background(), ns, seed, cfg); err != nil {
			t.Fatal(err)
		}
		roots[fmt.Sprint("synth-", seed)] = root
	}
	for name, root := range roots {
		t.Run(name, func(t *testing.T) {
			r := diskReg{t, root}
			tags, revs, last := r.links()
			ctx := context.Background()
			idx, err := graph.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer idx.Close()
			if err := graph.Build(ctx, storage.NewFilesystem(root), idx, graph.WithDeferredStats(false)); err != nil {
				t.Fatal(err)
			}
			p, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			c, err := analysis.NewCapacity(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			// Tags: each servable tag's image bytes, and those no other tagged
			// manifest's image has.
			images := map[digest.Digest]map[digest.Digest]int64{}
			reachers := map[digest.Digest]int{}
			for repo, ts := range tags {
				for _, d := range ts {
					if !revs[repo][d] || images[d] != nil {
						continue
					}
					images[d] = map[digest.Digest]int64{}
					r.closure(d, images[d])
					for x := range images[d] {
						reachers[x]++
					}
				}
			}
			want := map[string]string{}
			for repo, ts := range tags {
				for tag, d := range ts {
					if !revs[repo][d] {
						continue
					}
					var total, unique int64
					for x, s := range images[d] {
						total += s
						if reachers[x] == 1 {
							unique += s
						}
					}
					want[repo+":"+tag] = fmt.Sprintf("%s %d %d", d, total, unique)
				}
			}
			got := map[string]string{}
			for _, ti := range c.Tags {
				got[ti.Repository+":"+ti.Tag] = fmt.Sprintf("%s %d %d", ti.Digest, ti.Bytes, ti.UniqueBytes)
				if ti.PushedAt.IsZero() {
					t.Errorf("%s:%s has no push time", ti.Repository, ti.Tag)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("tags (digest bytes unique):\n got %v\nwant %v", got, want)
			}
			// Namespaces, default mode: every revision of their repositories a root.
			nsReach := map[string]map[digest.Digest]int64{}
			for repo, ds := range revs {
				ns := repo
				if i := strings.Index(repo, "/"); i > 0 {
					ns = repo[:i] + "/*"
				}
				if nsReach[ns] == nil {
					nsReach[ns] = map[digest.Digest]int64{}
				}
				for d := range ds {
					r.closure(d, nsReach[ns])
				}
			}
			wantNS := map[string]string{}
			for ns, reach := range nsReach {
				var total, unique int64
				for x, s := range reach {
					total += s
					shared := false
					for other, o := range nsReach {
						if _, ok := o[x]; ok && other != ns {
							shared = true
						}
					}
					if !shared {
						unique += s
					}
				}
				wantNS[ns] = fmt.Sprintf("%d %d", total, unique)
			}
			gotNS := map[string]string{}
			for _, n := range c.Namespaces {
				gotNS[n.Name] = fmt.Sprintf("%d %d", n.Bytes, n.UniqueBytes)
			}
			if fmt.Sprint(gotNS) != fmt.Sprint(wantNS) {
				t.Errorf("namespaces (bytes unique):\n got %v\nwant %v", gotNS, wantNS)
			}
			for _, rc := range c.Repositories {
				if !rc.LastPush.Equal(last[rc.Name]) {
					t.Errorf("%s: last push %v, the files say %v", rc.Name, rc.LastPush, last[rc.Name])
				}
			}
		})
	}
}
