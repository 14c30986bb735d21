package analysis

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
)

// ImageGraph is one repository's part of the reference graph, ready to draw: its tags,
// the manifests it links and what they reach, and blobs it links that nothing reaches.
type ImageGraph struct {
	Repository string      `json:"repository"`
	Nodes      []GraphNode `json:"nodes"`
	Edges      []GraphEdge `json:"edges"`
}

// Node kinds.
const (
	NodeTag      = "tag"
	NodeIndex    = "index"    // OCI image index or Docker manifest list
	NodeManifest = "manifest" // image manifest (or one that could not be read)
	NodeReferrer = "referrer" // manifest with a subject: signature, SBOM, attestation
	NodeConfig   = "config"
	NodeLayer    = "layer"
	NodeBlob     = "blob" // linked into the repository (_layers) but reached by no manifest
)

// Node states, from the plan.
const (
	StateLive    = "live"
	StateGarbage = "garbage" // the plan deletes the blob, or this repository's revision link
	StateKept    = "kept"    // not live, but kept (grace period, fail-closed rules)
	StateMissing = "missing" // referenced, but its blob data is not in the blob store
)

// GraphNode is a tag, manifest or blob.
type GraphNode struct {
	// ID is the digest, or "tag:" and the tag's name.
	ID     string        `json:"id"`
	Kind   string        `json:"kind"`
	Label  string        `json:"label"` // tag name or short digest
	Digest digest.Digest `json:"digest,omitempty"`
	Size   int64         `json:"size,omitempty"`
	State  string        `json:"state"`
	// Shared is set when another repository's live manifests reach the blob.
	Shared bool `json:"shared,omitempty"`
	// Linked is set on manifests this repository has a revision link for; a subject
	// in another repository, say, has none.
	Linked bool   `json:"linked,omitempty"`
	Detail string `json:"detail,omitempty"` // media type, artifact type, or why it is kept
}

// GraphEdge points from a tag to its manifest, from a manifest to what it references,
// or from a referrer to its subject. Kind is "tag", or a graph.EdgeKind's name:
// "mentions" (a digest found in an unreadable manifest) and "maybe-indexed" (a
// revision an unreadable or missing manifest might be an index of) among them.
type GraphEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
}

// NewImageGraphs draws the repositories named, under plan p, from the graph p was
// made from.
func NewImageGraphs(ctx context.Context, p *gc.Plan, repos ...string) ([]*ImageGraph, error) {
	b, err := newGraphBuilder(p, repos)
	if err != nil {
		return nil, err
	}
	out := make([]*ImageGraph, 0, len(repos))
	for _, r := range repos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g, err := b.build(r)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

type graphBuilder struct {
	g        *graph.Graph
	p        *gc.Plan
	repos    map[string]bool // that have _manifests
	tags     map[string][]graph.Tag
	layers   map[string][]uint32 // of the repositories drawn
	deleted  map[digest.Digest]bool
	unlinked map[string]bool // repo + "\x00" + digest: revision link deleted
	kept     map[string]string
}

func newGraphBuilder(p *gc.Plan, draw []string) (*graphBuilder, error) {
	g := p.Graph()
	if g == nil {
		return nil, errNoGraph
	}
	b := &graphBuilder{
		g: g, p: p, repos: map[string]bool{}, tags: map[string][]graph.Tag{}, layers: map[string][]uint32{},
		deleted: map[digest.Digest]bool{}, unlinked: map[string]bool{}, kept: map[string]string{},
	}
	drawn := map[string]bool{}
	for _, r := range draw {
		drawn[r] = true
	}
	for _, r := range g.Repos() {
		if r.HasManifests {
			b.repos[r.Name] = true
		}
	}
	for _, t := range g.Tags() {
		b.tags[t.Repo] = append(b.tags[t.Repo], t)
	}
	err := g.Layers(func(l graph.Link) error {
		if drawn[l.Repo] {
			b.layers[l.Repo] = append(b.layers[l.Repo], l.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read layer links: %w", err)
	}
	for _, x := range p.Blobs {
		b.deleted[x.Digest()] = true
	}
	for _, m := range p.Manifests {
		b.unlinked[m.Repository+"\x00"+m.Digest.String()] = true
	}
	for _, k := range p.Kept {
		b.kept[k.Kind+"\x00"+k.Repository+"\x00"+k.Digest.String()] = k.Reason
	}
	return b, nil
}

func (b *graphBuilder) build(repo string) (*ImageGraph, error) {
	if !b.repos[repo] {
		return nil, fmt.Errorf("repository %q is not in the index (or has no _manifests)", repo)
	}
	g := b.g
	ig := &ImageGraph{Repository: repo, Nodes: []GraphNode{}, Edges: []GraphEdge{}}
	linked := map[uint32]bool{}
	var live []uint32
	for _, id := range g.RevisionsOf(repo) {
		linked[id] = true
		if b.p.LiveManifest(id) {
			live = append(live, id)
		}
	}
	// What this repository's live manifests reach, by the walk the stats use: a
	// node is shared when another repository's live manifests reach it too.
	reached := graph.NewBitset(g.MaxID())
	if _, err := g.NewWalker(graph.WalkOptions{}).Walk(live, func(id, _ uint32, kind graph.EdgeKind) {
		if kind != graph.EdgeSubject {
			reached.Set(id)
		}
	}); err != nil {
		return nil, err
	}
	nodes := map[string]int{}
	edges := map[GraphEdge]bool{}
	var derr error
	dg := func(id uint32) digest.Digest {
		d, err := g.Digest(id)
		if err != nil && derr == nil {
			derr = err
		}
		return d
	}
	node := func(id uint32, kind string) string {
		d := dg(id)
		key := d.String()
		if i, ok := nodes[key]; ok {
			// A blob reached as a layer and as a config, say: the first kind wins,
			// except that a manifest kind beats a blob kind.
			if isBlobKind(ig.Nodes[i].Kind) && !isBlobKind(kind) {
				ig.Nodes[i].Kind = kind
			}
			return key
		}
		n := GraphNode{ID: key, Kind: kind, Label: shortDigest(d), Digest: d}
		present := g.Present(id)
		n.Size = g.Size(id)
		if man, ok := g.Manifest(id); ok {
			n.Detail = cmp.Or(man.ArtifactType, man.MediaType)
			if man.Unreadable != "" {
				n.Detail = "unreadable: " + man.Unreadable
			}
		}
		manifestKey := "manifest\x00" + repo + "\x00" + key
		switch {
		case !present:
			n.State = StateMissing
		case b.deleted[d]:
			n.State = StateGarbage
		case !isBlobKind(kind) && b.unlinked[repo+"\x00"+key]:
			n.State = StateGarbage
			n.Detail = "revision link deleted; " + n.Detail
		case b.kept["blob\x00\x00"+key] != "":
			n.State, n.Detail = StateKept, "kept: "+b.kept["blob\x00\x00"+key]
		case !isBlobKind(kind) && b.kept[manifestKey] != "":
			n.State, n.Detail = StateKept, "kept: "+b.kept[manifestKey]
		default:
			n.State = StateLive
		}
		n.Shared = b.p.Shared(id) || b.p.Reached(id) && !reached.Has(id)
		n.Linked = linked[id]
		if !isBlobKind(kind) && !n.Linked && n.State != StateMissing {
			n.Detail = "not linked in this repository; " + n.Detail
		}
		nodes[key] = len(ig.Nodes)
		ig.Nodes = append(ig.Nodes, n)
		return key
	}
	edge := func(from, to, kind string) {
		e := GraphEdge{From: from, To: to, Kind: kind}
		if !edges[e] {
			edges[e] = true
			ig.Edges = append(ig.Edges, e)
		}
	}
	kindOf := func(id uint32) string {
		man, ok := g.Manifest(id)
		switch {
		case !ok || man.Missing || man.Unreadable != "":
			return NodeManifest
		case man.Subject != 0:
			return NodeReferrer
		}
		es, _ := g.Edges(id)
		for _, e := range es {
			if e.Kind == graph.EdgeChild {
				return NodeIndex
			}
		}
		return NodeManifest
	}

	tags := slices.Clone(b.tags[repo])
	slices.SortFunc(tags, func(x, y graph.Tag) int { return cmp.Compare(x.Name, y.Name) })
	for _, t := range tags {
		tn := GraphNode{ID: "tag:" + t.Name, Kind: NodeTag, Label: t.Name, State: StateLive}
		switch {
		case t.Bad != "" || t.ID == 0:
			tn.State, tn.Detail = StateMissing, "unreadable current link: "+t.Bad
		case !linked[t.ID]:
			tn.State, tn.Detail = StateMissing, "names a manifest without a revision link here"
		}
		nodes[tn.ID] = len(ig.Nodes)
		ig.Nodes = append(ig.Nodes, tn)
		if t.ID != 0 {
			edge(tn.ID, node(t.ID, kindOf(t.ID)), "tag")
		}
	}
	// Every linked manifest and what it reaches, by the shared walk, drawn edge by
	// edge; referrers point at their subjects.
	roots := slices.Clone(g.RevisionsOf(repo))
	slices.Sort(roots)
	_, err := g.NewWalker(graph.WalkOptions{}).Walk(roots, func(id, parent uint32, kind graph.EdgeKind) {
		if parent == 0 {
			node(id, kindOf(id))
			return
		}
		from := node(parent, kindOf(parent))
		switch kind {
		case graph.EdgeChild, graph.EdgeSubject, graph.EdgeMaybeIndexed:
			edge(from, node(id, kindOf(id)), kind.String())
		case graph.EdgeConfig:
			edge(from, node(id, NodeConfig), kind.String())
		case graph.EdgeMentions:
			k := NodeBlob
			if _, ok := g.Manifest(id); ok {
				k = kindOf(id)
			}
			edge(from, node(id, k), kind.String())
		default:
			edge(from, node(id, NodeLayer), kind.String())
		}
	})
	if err != nil {
		return nil, err
	}
	layers := slices.Clone(b.layers[repo])
	slices.Sort(layers)
	for _, id := range layers {
		if _, ok := nodes[dg(id).String()]; !ok {
			node(id, NodeBlob)
		}
	}
	if derr != nil {
		return nil, derr
	}
	rank := map[string]int{NodeTag: 0, NodeIndex: 1, NodeManifest: 2, NodeReferrer: 3, NodeConfig: 4, NodeLayer: 5, NodeBlob: 6}
	slices.SortStableFunc(ig.Nodes, func(x, y GraphNode) int {
		return cmp.Or(cmp.Compare(rank[x.Kind], rank[y.Kind]), cmp.Compare(x.ID, y.ID))
	})
	slices.SortFunc(ig.Edges, func(x, y GraphEdge) int {
		return cmp.Or(cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To), cmp.Compare(x.Kind, y.Kind))
	})
	return ig, nil
}

func isBlobKind(k string) bool { return k == NodeConfig || k == NodeLayer || k == NodeBlob }

func shortDigest(d digest.Digest) string {
	h := d.Encoded()
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// Colors shared by both renderings: fill and stroke per state, and the stroke of
// shared blobs.
var stateStyle = map[string][2]string{
	StateLive:    {"#dcfce7", "#15803d"},
	StateGarbage: {"#fee2e2", "#b91c1c"},
	StateKept:    {"#fef3c7", "#b45309"},
	StateMissing: {"#e5e7eb", "#6b7280"},
}

const sharedStroke = "#1d4ed8"

// nodeText is a node's label lines.
func nodeText(n GraphNode) []string {
	if n.Kind == NodeTag {
		return []string{n.Label}
	}
	lines := []string{n.Kind + " " + n.Label}
	if n.State == StateMissing {
		lines = append(lines, "missing")
	} else {
		lines = append(lines, humanize.IBytes(uint64(n.Size)))
	}
	var marks []string
	if n.State != StateLive && n.State != StateMissing {
		marks = append(marks, n.State)
	}
	if n.Shared {
		marks = append(marks, "shared")
	}
	if len(marks) > 0 {
		lines = append(lines, strings.Join(marks, ", "))
	}
	return lines
}

// dotQuote quotes s as a DOT string.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}

// WriteDOT renders the graph for Graphviz: tags on the left, blobs on the right.
// Fill says the state (green live, red garbage, amber kept, grey missing); a thick
// blue border marks blobs other repositories reach too.
func (g *ImageGraph) WriteDOT(w io.Writer) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "digraph %s {\n", dotQuote(g.Repository))
	sb.WriteString("  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, nodesep=0.25, ranksep=0.6, bgcolor=\"transparent\"];\n")
	sb.WriteString("  node [fontname=\"Helvetica\", fontsize=10, style=\"rounded,filled\", shape=box, margin=\"0.12,0.05\"];\n")
	sb.WriteString("  edge [color=\"#64748b\", arrowsize=0.7];\n")
	fmt.Fprintf(&sb, "  label=%s; labelloc=t;\n", dotQuote(g.Repository))
	shapes := map[string]string{NodeTag: "cds", NodeIndex: "box3d", NodeManifest: "box", NodeReferrer: "note", NodeConfig: "box", NodeLayer: "box", NodeBlob: "box"}
	for _, n := range g.Nodes {
		st := stateStyle[n.State]
		attrs := []string{
			"label=" + dotQuote(strings.Join(nodeText(n), "\n")),
			"shape=" + shapes[n.Kind],
			"fillcolor=" + dotQuote(st[0]),
			"color=" + dotQuote(st[1]),
		}
		style := "filled"
		if n.Kind != NodeReferrer && n.Kind != NodeIndex && n.Kind != NodeTag {
			style = "rounded,filled"
		}
		if n.State == StateMissing || n.Kind == NodeBlob {
			style += ",dashed"
		}
		if n.Kind == NodeTag {
			attrs = append(attrs, `fillcolor="#e0e7ff"`, `color="#4338ca"`, `fontname="Helvetica-Bold"`)
		}
		if n.Shared {
			attrs = append(attrs, "color="+dotQuote(sharedStroke), "penwidth=2.5")
		}
		attrs = append(attrs, "style="+dotQuote(style))
		if n.Detail != "" || n.Digest != "" {
			attrs = append(attrs, "tooltip="+dotQuote(strings.TrimSpace(n.Digest.String()+" "+n.Detail)))
		}
		fmt.Fprintf(&sb, "  %s [%s];\n", dotQuote(n.ID), strings.Join(attrs, ", "))
	}
	for _, e := range g.Edges {
		var attrs []string
		switch e.Kind {
		case "subject":
			attrs = append(attrs, `style=dashed`, `label="subject"`, `fontsize=8`, `color="#7c3aed"`, `fontcolor="#7c3aed"`)
		case "mentions":
			attrs = append(attrs, `style=dotted`)
		case "tag":
			attrs = append(attrs, `color="#4338ca"`)
		}
		fmt.Fprintf(&sb, "  %s -> %s", dotQuote(e.From), dotQuote(e.To))
		if len(attrs) > 0 {
			fmt.Fprintf(&sb, " [%s]", strings.Join(attrs, ", "))
		}
		sb.WriteString(";\n")
	}
	sb.WriteString("}\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

// mermaidText escapes s for a quoted Mermaid label.
func mermaidText(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ")
	return r.Replace(s)
}

// WriteMermaid renders the graph as a Mermaid flowchart with the same colors as WriteDOT.
func (g *ImageGraph) WriteMermaid(w io.Writer) error {
	var sb strings.Builder
	sb.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, n := range g.Nodes {
		ids[n.ID] = fmt.Sprintf("n%d", i)
	}
	for _, n := range g.Nodes {
		lines := nodeText(n)
		for i := range lines {
			lines[i] = mermaidText(lines[i])
		}
		label := strings.Join(lines, "<br/>")
		open, close := "[\"", "\"]"
		switch n.Kind {
		case NodeTag:
			open, close = "([\"", "\"])"
		case NodeIndex:
			open, close = "[[\"", "\"]]"
		case NodeReferrer:
			open, close = "[/\"", "\"/]"
		}
		class := n.State
		if n.Kind == NodeTag {
			class = "tag"
		}
		fmt.Fprintf(&sb, "  %s%s%s%s:::%s\n", ids[n.ID], open, label, close, class)
	}
	for _, e := range g.Edges {
		arrow := "-->"
		switch e.Kind {
		case "subject":
			arrow = "-. subject .->"
		case "mentions":
			arrow = "-.->"
		}
		fmt.Fprintf(&sb, "  %s %s %s\n", ids[e.From], arrow, ids[e.To])
	}
	for _, s := range []string{StateLive, StateGarbage, StateKept, StateMissing} {
		st := stateStyle[s]
		fmt.Fprintf(&sb, "  classDef %s fill:%s,stroke:%s,color:#111827\n", s, st[0], st[1])
	}
	sb.WriteString("  classDef tag fill:#e0e7ff,stroke:#4338ca,color:#111827\n")
	fmt.Fprintf(&sb, "  classDef shared stroke:%s,stroke-width:3px\n", sharedStroke)
	var shared []string
	for _, n := range g.Nodes {
		if n.Shared {
			shared = append(shared, ids[n.ID])
		}
	}
	if len(shared) > 0 {
		fmt.Fprintf(&sb, "  class %s shared\n", strings.Join(shared, ","))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
