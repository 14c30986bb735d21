package analysis_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc/analysis"
)

var mermaidEdge = regexp.MustCompile(`^  n\d+ (-->|-\.->|-\. subject \.->) n\d+$`)

// TestImageGraph checks the graph of every repository against the plan: states come
// from its delete and keep sets, and in default mode (every linked manifest live) the
// sizes of the drawn manifests and blobs add up to the repository's bytes, and those
// of the ones marked shared to its shared bytes.
// dotPath finds Graphviz's dot; without it the rendering checks are skipped, except
// on CI, which must run them.
func dotPath(t *testing.T) string {
	t.Helper()
	dot, err := exec.LookPath("dot")
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatal("dot is not installed (apt-get install graphviz); CI must render the image graphs")
	}
	return dot
}

func TestImageGraph(t *testing.T) {
	dot := dotPath(t)
	for _, r := range capRegistries(t) {
		for _, m := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/m=%v", r.name, m), func(t *testing.T) {
				p := r.plan(t, m)
				var names []string
				for _, rs := range p.Repositories {
					names = append(names, rs.Name)
				}
				graphs, err := analysis.NewImageGraphs(context.Background(), p, names...)
				if err != nil {
					t.Fatal(err)
				}
				deleted := map[digest.Digest]bool{}
				for _, b := range p.Blobs {
					deleted[b.Digest()] = true
				}
				unlinked := map[string]bool{}
				for _, x := range p.Manifests {
					unlinked[x.Repository+" "+x.Digest.String()] = true
				}
				for i, g := range graphs {
					rs := p.Repositories[i]
					ids := map[string]analysis.GraphNode{}
					var garbage int
					for _, n := range g.Nodes {
						if _, dup := ids[n.ID]; dup {
							t.Errorf("%s: node %s twice", g.Repository, n.ID)
						}
						ids[n.ID] = n
						if n.Kind == analysis.NodeTag {
							continue
						}
						wantGarbage := deleted[n.Digest] || n.Kind != analysis.NodeConfig && n.Kind != analysis.NodeLayer && n.Kind != analysis.NodeBlob && unlinked[g.Repository+" "+n.Digest.String()]
						if (n.State == analysis.StateGarbage) != wantGarbage {
							t.Errorf("%s: %s %s is %s, plan deletes it: %v", g.Repository, n.Kind, n.Digest, n.State, wantGarbage)
						}
						if n.State == analysis.StateGarbage {
							garbage++
						}
					}
					out := map[string][]analysis.GraphEdge{}
					for _, e := range g.Edges {
						if _, ok := ids[e.From]; !ok {
							t.Errorf("%s: edge from unknown node %s", g.Repository, e.From)
						}
						if _, ok := ids[e.To]; !ok {
							t.Errorf("%s: edge to unknown node %s", g.Repository, e.To)
						}
						out[e.From] = append(out[e.From], e)
					}
					// What the linked manifests reach over the drawn edges, subjects aside.
					var stack []string
					for _, n := range g.Nodes {
						if n.Linked {
							stack = append(stack, n.ID)
						}
					}
					reached := map[string]bool{}
					var total, shared int64
					for len(stack) > 0 {
						id := stack[len(stack)-1]
						stack = stack[:len(stack)-1]
						if reached[id] {
							continue
						}
						reached[id] = true
						if n := ids[id]; n.State != analysis.StateMissing {
							total += n.Size
							if n.Shared {
								shared += n.Size
							}
						}
						for _, e := range out[id] {
							if e.Kind != "subject" {
								stack = append(stack, e.To)
							}
						}
					}
					if rs.Tags > 0 && len(g.Edges) == 0 {
						t.Errorf("%s: no edges", g.Repository)
					}
					if !m && (total != rs.Bytes || shared != rs.SharedBytes) {
						t.Errorf("%s: drawn %d bytes, %d shared; repository stats %d, %d shared", g.Repository, total, shared, rs.Bytes, rs.SharedBytes)
					}
					if rs.ReclaimableBytes > 0 && garbage == 0 {
						t.Errorf("%s: reclaims %d bytes but draws no garbage", g.Repository, rs.ReclaimableBytes)
					}

					var mer bytes.Buffer
					if err := g.WriteMermaid(&mer); err != nil {
						t.Fatal(err)
					}
					lines := strings.Split(mer.String(), "\n")
					edgeLines := 0
					for _, l := range lines {
						if mermaidEdge.MatchString(l) {
							edgeLines++
						}
					}
					if lines[0] != "flowchart LR" || strings.Count(mer.String(), ":::") != len(g.Nodes) || edgeLines != len(g.Edges) {
						t.Errorf("%s: mermaid does not draw %d nodes and %d edges:\n%s", g.Repository, len(g.Nodes), len(g.Edges), mer.String())
					}
					var dotSrc bytes.Buffer
					if err := g.WriteDOT(&dotSrc); err != nil {
						t.Fatal(err)
					}
					if strings.Count(dotSrc.String(), " -> ") != len(g.Edges) {
						t.Errorf("%s: dot has not %d edges:\n%s", g.Repository, len(g.Edges), dotSrc.String())
					}
					if dot != "" {
						cmd := exec.Command(dot, "-Tsvg")
						cmd.Stdin = &dotSrc
						out, err := cmd.CombinedOutput()
						if err != nil || !bytes.Contains(out, []byte("<svg")) {
							t.Errorf("%s: dot -Tsvg: %v\n%s", g.Repository, err, out)
						}
					}
				}
			})
		}
	}
}

// TestImageGraphSample pins the shape of one sample repository.
func TestImageGraphSample(t *testing.T) {
	r := capRegistries(t)[0]
	p := r.plan(t, true)
	gs, err := analysis.NewImageGraphs(context.Background(), p, "library/debian")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]int{}
	for _, n := range gs[0].Nodes {
		if kinds[n.Kind] == nil {
			kinds[n.Kind] = map[string]int{}
		}
		kinds[n.Kind][n.State]++
	}
	// Tag 12, its image (live) and the untagged 12.0 image -m deletes; the base layer
	// is shared with team/app/web.
	want := map[string]map[string]int{
		analysis.NodeTag:      {analysis.StateLive: 1},
		analysis.NodeManifest: {analysis.StateLive: 1, analysis.StateGarbage: 1},
	}
	for k, v := range want {
		for s, n := range v {
			if kinds[k][s] != n {
				t.Errorf("%d %s %s nodes, want %d (all: %v)", kinds[k][s], s, k, n, kinds)
			}
		}
	}
	base := sharedBase(t, r)
	for _, n := range gs[0].Nodes {
		if n.Digest == base && (!n.Shared || n.State != analysis.StateLive || n.Kind != analysis.NodeLayer) {
			t.Errorf("base layer drawn as %+v, want a live shared layer", n)
		}
	}
	if _, err := analysis.NewImageGraphs(context.Background(), p, "no/such"); err == nil {
		t.Error("graph of a missing repository: no error")
	}
}
