package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
)

// The HTML report is one file: template, CSS and JS are embedded and inlined, charts
// are SVG drawn here, image graphs are SVG from Graphviz. It fetches nothing.
//
//go:embed assets/report.html.tmpl assets/report.css assets/report.js
var assets embed.FS

// maxGraphNodes keeps the page small: larger graphs are left to regsweep graph.
const maxGraphNodes = 400

// page is what assets/report.html.tmpl renders. Every number shown carries its raw
// value in a data-value attribute next to a stable id, for scripts and tests.
type page struct {
	CSS       template.CSS
	JS        template.JS
	Mode      string
	Index     indexInfo
	Generated string
	Cards     []card
	Counts    []card
	WhatIf    *whatIfView
	Retention *retentionView
	RepoChart barChart
	SizeChart barChart
	AgeChart  barChart
	AgeNote   string
	Repos     []repoRow
	Graphs    []graphView
	Warnings  int
	// WarningRows are the first maxHTMLWarnings warnings; Namespaces and Tags the
	// capacity's roll-ups and tags (the first maxHTMLTags).
	WarningRows []repoRow
	Namespaces  []repoRow
	Tags        []repoRow
	MoreTags    int
}

type card struct {
	ID, Label, Value, Raw, Sub, Class string
}

type whatIfView struct {
	Sentence string
	Cards    []card
}

// retentionView is what a retention policy decides: per policy, per repository, and
// the tags it does not keep (the first maxHTMLTags).
type retentionView struct {
	File     string
	Cards    []card
	Policies []repoRow
	Repos    []repoRow
	Tags     []repoRow
	MoreTags int
}

const (
	maxHTMLTags     = 500
	maxHTMLWarnings = 200
)

// barChart is a horizontal bar chart: one row per item, each bar made of segments.
type barChart struct {
	ID            string
	Width, Height int
	LabelWidth    int
	Legend        []legendItem
	Rows          []barRow
}

type legendItem struct {
	X     int
	Class string
	Text  string
}

type barRow struct {
	Y, TextY int
	Label    string
	Key      string // data-key: repository name or bucket label
	Value    string // text right of the bar
	ValueX   int
	Segments []segment
	Data     []dataAttr
}

type segment struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// dataAttr is a data-* attribute of a row; names are fixed in this file and
// alphanumeric (html/template refuses others in attribute-name position).
type dataAttr struct {
	Name  string
	Value string
}

type repoRow struct {
	Name  string
	Cells []cell
}

type cell struct {
	Col, Raw, Text, Title string
}

type graphView struct {
	Repo     string
	Format   string // svg, mermaid or none
	SVG      template.HTML
	Mermaid  string
	Note     string
	Nodes    int
	Edges    int
	Garbage  int
	Shared   int
	Manifest int
}

func num(n int64) string { return humanize.Comma(n) }

func raw(n int64) string { return strconv.FormatInt(n, 10) }

// writeHTML renders the report. dotCmd draws the image graphs; when it cannot be found
// or fails, the page shows their Mermaid source instead.
func writeHTML(ctx context.Context, w io.Writer, r *capacityReport, graphs []*analysis.ImageGraph, dotCmd string) error {
	css, err := assets.ReadFile("assets/report.css")
	if err != nil {
		return err
	}
	js, err := assets.ReadFile("assets/report.js")
	if err != nil {
		return err
	}
	tmpl, err := template.New("report.html.tmpl").ParseFS(assets, "assets/report.html.tmpl")
	if err != nil {
		return err
	}
	s, c := r.Summary, r.Capacity
	p := page{
		CSS: template.CSS(css), JS: template.JS(js),
		Mode: modeText(r.Mode), Index: r.Index,
		Generated: time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Warnings:  len(r.Warnings),
	}
	bytesCard := func(id, label string, v int64, sub, class string) card {
		return card{ID: id, Label: label, Value: ib(v), Raw: raw(v), Sub: sub, Class: class}
	}
	pct := func(v int64) string {
		if c.TotalBytes == 0 {
			return "0%"
		}
		return strconv.FormatFloat(float64(v)*100/float64(c.TotalBytes), 'f', 1, 64) + "%"
	}
	p.Cards = []card{
		bytesCard("card-total-bytes", "Stored", c.TotalBytes, nBlobs(s.Blobs)+" in the blob store", "total"),
		bytesCard("card-live-bytes", "Live", c.LiveBytes, pct(c.LiveBytes)+" · "+nBlobs(s.LiveBlobs)+" reachable", "live"),
		bytesCard("card-garbage-bytes", "Garbage", c.GarbageBytes, pct(c.GarbageBytes)+" · "+nBlobs(s.DeleteBlobs)+" GC frees now", "garbage"),
		bytesCard("card-kept-bytes", "Kept", c.KeptBytes, "not live, kept by grace or fail-closed", "kept"),
		{ID: "card-dedup-ratio", Label: "Deduplication", Value: strconv.FormatFloat(c.DedupRatio, 'f', 2, 64) + "×",
			Raw: strconv.FormatFloat(c.DedupRatio, 'f', -1, 64), Sub: num(int64(c.Images)) + " tagged images reference " + ib(c.LogicalBytes), Class: "dedup"},
	}
	count := func(id, label string, v int) card {
		return card{ID: id, Label: label, Value: num(int64(v)), Raw: strconv.Itoa(v)}
	}
	p.Counts = []card{
		count("count-repositories", "repositories", s.Repositories),
		count("count-tags", "tags", s.Tags),
		count("count-manifests", "manifests", s.Manifests),
		count("count-blobs", "blobs", s.Blobs),
		count("count-delete-manifests", "revisions to delete", s.DeleteManifests),
		count("count-delete-layer-links", "layer links to delete", s.DeleteLayerLinks),
		count("count-delete-uploads", "uploads to delete", s.DeleteUploads),
	}
	if wi := r.WhatIf; wi != nil {
		p.WhatIf = &whatIfView{Sentence: whatIfText(wi), Cards: []card{
			bytesCard("whatif-additional-bytes", "Frees in addition", wi.AdditionalBytes, "", "garbage"),
			count("whatif-additional-blobs", "Additional blobs", wi.AdditionalBlobs),
			bytesCard("whatif-freed-bytes-now", "GC frees now", wi.FreedBytesNow, "", ""),
			bytesCard("whatif-freed-bytes-after", "GC frees after", wi.FreedBytesAfter, "", ""),
		}}
	}
	if rt := r.Retention; rt != nil {
		v := &retentionView{File: rt.File, Cards: []card{
			count("retention-delete-tags", "Tags to delete", len(r.Delete.Tags)),
			bytesCard("retention-freed-bytes", "Untagging frees", rt.FreedBytes, nBlobs(rt.FreedBlobs)+", "+num(int64(rt.FreedManifests))+" manifest revisions", "garbage"),
		}}
		counts := func(c gc.RetentionCounts) []cell {
			n := func(col string, v int) cell { return cell{Col: col, Raw: strconv.Itoa(v), Text: num(int64(v))} }
			return []cell{n("tags", c.Tags), n("delete_tags", c.DeleteTags), n("kept_by_safety", c.KeptBySafety),
				{Col: "freed_bytes", Raw: raw(c.FreedBytes), Text: ib(c.FreedBytes)}, n("freed_blobs", c.FreedBlobs), n("freed_manifests", c.FreedManifests)}
		}
		for _, x := range rt.Policies {
			untagged := "no"
			if x.DeleteUntagged {
				untagged = "yes"
			}
			v.Policies = append(v.Policies, repoRow{Name: x.Policy, Cells: append([]cell{{Col: "policy", Raw: x.Policy, Text: x.Policy},
				{Col: "delete_untagged", Raw: untagged, Text: untagged}, {Col: "repositories", Raw: strconv.Itoa(x.Repositories), Text: num(int64(x.Repositories))}}, counts(x.RetentionCounts)...)})
		}
		for _, x := range rt.Repositories {
			v.Repos = append(v.Repos, repoRow{Name: x.Name, Cells: append([]cell{{Col: "name", Raw: x.Name, Text: x.Name}, {Col: "policy", Raw: x.Policy, Text: x.Policy}}, counts(x.RetentionCounts)...)})
		}
		for i, t := range r.Delete.Tags {
			if i == maxHTMLTags {
				v.MoreTags = len(r.Delete.Tags) - i
				break
			}
			ref := t.Repository + ":" + t.Tag
			v.Tags = append(v.Tags, repoRow{Name: ref, Cells: []cell{{Col: "tag", Raw: ref, Text: ref},
				{Col: "pushed_at", Raw: t.PushedAt.UTC().Format(time.RFC3339), Text: t.PushedAt.UTC().Format("2006-01-02 15:04")},
				{Col: "digest", Raw: t.Digest.String(), Text: fmt.Sprintf("%.19s", t.Digest), Title: t.Digest.String()},
				{Col: "reason", Raw: t.Reason, Text: t.Reason, Title: t.Policy}}})
		}
		p.Retention = v
	}
	p.RepoChart = repoChart(c)
	p.SizeChart = bucketChart("chart-sizes", sizeRows(c))
	p.AgeChart = bucketChart("chart-ages", ageRows(c))
	p.AgeNote = unknownAgeNote(c)

	repos := slices.Clone(c.Repositories)
	slices.SortStableFunc(repos, func(a, b analysis.RepoCapacity) int { return cmp.Compare(b.Bytes, a.Bytes) })
	for _, rc := range repos {
		b := func(col string, v int64) cell { return cell{Col: col, Raw: raw(v), Text: ib(v)} }
		n := func(col string, v int) cell { return cell{Col: col, Raw: strconv.Itoa(v), Text: num(int64(v))} }
		img, imgBytes := cell{Col: "largest_image", Text: "—"}, cell{Col: "largest_image_bytes", Raw: "0", Text: "—"}
		if len(rc.LargestImages) > 0 {
			li := rc.LargestImages[0]
			img = cell{Col: "largest_image", Raw: li.Tags[0], Text: strings.Join(li.Tags, ", "), Title: li.Digest.String()}
			imgBytes = b("largest_image_bytes", li.Bytes)
		}
		p.Repos = append(p.Repos, repoRow{Name: rc.Name, Cells: []cell{
			{Col: "name", Raw: rc.Name, Text: rc.Name},
			n("tags", rc.Tags), n("manifests", rc.Manifests),
			b("bytes", rc.Bytes), b("unique_bytes", rc.UniqueBytes), b("shared_bytes", rc.SharedBytes),
			b("reclaimable_bytes", rc.ReclaimableBytes), img, imgBytes, when("last_push", rc.LastPush),
		}})
	}
	for _, n := range c.Namespaces {
		b := func(col string, v int64) cell { return cell{Col: col, Raw: raw(v), Text: ib(v)} }
		cnt := func(col string, v int) cell { return cell{Col: col, Raw: strconv.Itoa(v), Text: num(int64(v))} }
		p.Namespaces = append(p.Namespaces, repoRow{Name: n.Name, Cells: []cell{{Col: "name", Raw: n.Name, Text: n.Name},
			cnt("repositories", n.Repositories), cnt("tags", n.Tags), cnt("manifests", n.Manifests),
			b("bytes", n.Bytes), b("unique_bytes", n.UniqueBytes), b("reclaimable_bytes", n.ReclaimableBytes), when("last_push", n.LastPush)}})
	}
	for i, tg := range c.Tags {
		if i == maxHTMLTags {
			p.MoreTags = len(c.Tags) - i
			break
		}
		ref := tg.Repository + ":" + tg.Tag
		p.Tags = append(p.Tags, repoRow{Name: ref, Cells: []cell{{Col: "tag", Raw: ref, Text: ref},
			when("pushed_at", tg.PushedAt), {Col: "bytes", Raw: raw(tg.Bytes), Text: ib(tg.Bytes)},
			{Col: "unique_bytes", Raw: raw(tg.UniqueBytes), Text: ib(tg.UniqueBytes)},
			{Col: "digest", Raw: tg.Digest.String(), Text: fmt.Sprintf("%.19s", tg.Digest), Title: tg.Digest.String()}}})
	}
	for i, wn := range r.Warnings {
		if i == maxHTMLWarnings {
			break
		}
		p.WarningRows = append(p.WarningRows, repoRow{Name: wn.Path, Cells: []cell{{Col: "kind", Raw: wn.Kind, Text: wn.Kind},
			{Col: "repository", Raw: wn.Repository, Text: wn.Repository}, {Col: "path", Raw: wn.Path, Text: wn.Path}, {Col: "detail", Raw: wn.Detail, Text: wn.Detail}}})
	}

	dotPath := ""
	if dotCmd != "" {
		dotPath, _ = exec.LookPath(dotCmd)
	}
	for _, g := range graphs {
		v := graphView{Repo: g.Repository, Nodes: len(g.Nodes), Edges: len(g.Edges)}
		for _, n := range g.Nodes {
			if n.State == analysis.StateGarbage {
				v.Garbage++
			}
			if n.Shared {
				v.Shared++
			}
			if n.Kind == analysis.NodeManifest || n.Kind == analysis.NodeIndex || n.Kind == analysis.NodeReferrer {
				v.Manifest++
			}
		}
		switch {
		case len(g.Nodes) > maxGraphNodes:
			v.Format = "none"
			v.Note = fmt.Sprintf("%d nodes are too many to draw here; run: regsweep graph --index %s %s | dot -Tsvg > graph.svg", len(g.Nodes), r.Index.Dir, g.Repository)
		case dotPath != "":
			svg, err := dotSVG(ctx, dotPath, g)
			if err == nil {
				v.Format, v.SVG = "svg", template.HTML(svg)
				break
			}
			v.Note = "Graphviz failed (" + err.Error() + "); the Mermaid source follows."
			fallthrough
		default:
			var b strings.Builder
			if err := g.WriteMermaid(&b); err != nil {
				return err
			}
			v.Format, v.Mermaid = "mermaid", b.String()
			if v.Note == "" {
				v.Note = "Graphviz (dot) is not installed, so here is the graph's Mermaid source: paste it into a Markdown ```mermaid block or mermaid.live to draw it."
			}
		}
		p.Graphs = append(p.Graphs, v)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// dotSVG renders g with Graphviz and returns the <svg> element alone.
func dotSVG(ctx context.Context, dotPath string, g *analysis.ImageGraph) (string, error) {
	var src, out, errOut bytes.Buffer
	if err := g.WriteDOT(&src); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dotPath, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &src, &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut.String()))
	}
	svg := out.String()
	i := strings.Index(svg, "<svg")
	if i < 0 {
		return "", fmt.Errorf("dot wrote no <svg>")
	}
	return svg[i:], nil
}

// Chart geometry, in SVG user units. The SVGs scale to their panel's width; these
// widths keep text near its CSS size in a 1400px window (full and half panels).
const (
	repoChartWidth   = 1200
	bucketChartWidth = 600
	rowHeight        = 28
	barHeight        = 16
	legendH          = 30
)

func repoChart(c *analysis.Capacity) barChart {
	repos := slices.Clone(c.Repositories)
	slices.SortStableFunc(repos, func(a, b analysis.RepoCapacity) int {
		return cmp.Or(cmp.Compare(b.Bytes+b.ReclaimableBytes, a.Bytes+a.ReclaimableBytes), cmp.Compare(a.Name, b.Name))
	})
	if len(repos) > 15 {
		repos = repos[:15]
	}
	ch := barChart{ID: "chart-repos", Width: repoChartWidth, LabelWidth: 260}
	ch.Legend = []legendItem{{X: 0, Class: "unique", Text: "unique"}, {X: 110, Class: "shared", Text: "shared with other repositories"}, {X: 360, Class: "reclaimable", Text: "reclaimable (garbage it links)"}}
	var maxV int64 = 1
	for _, r := range repos {
		maxV = max(maxV, r.Bytes+r.ReclaimableBytes)
	}
	barX, barW := ch.LabelWidth+10, repoChartWidth-ch.LabelWidth-10-230
	for i, r := range repos {
		y := legendH + i*rowHeight
		row := barRow{Y: y, TextY: y + barHeight - 3, Label: r.Name, Key: r.Name,
			Value: ib(r.Bytes), ValueX: barX + barW + 8,
			Data: []dataAttr{{"bytes", raw(r.Bytes)}, {"unique", raw(r.UniqueBytes)}, {"shared", raw(r.SharedBytes)}, {"reclaimable", raw(r.ReclaimableBytes)}}}
		if r.ReclaimableBytes > 0 {
			row.Value += " + " + ib(r.ReclaimableBytes) + " garbage"
		}
		x := barX
		for _, s := range []struct {
			v     int64
			class string
		}{{r.UniqueBytes, "unique"}, {r.SharedBytes, "shared"}, {r.ReclaimableBytes, "reclaimable"}} {
			if s.v <= 0 {
				continue
			}
			w := max(1, int(s.v*int64(barW)/maxV))
			row.Segments = append(row.Segments, segment{X: x, Y: y, W: w, H: barHeight, Class: s.class, Title: fmt.Sprintf("%s %s: %s", r.Name, s.class, ib(s.v))})
			x += w
		}
		ch.Rows = append(ch.Rows, row)
	}
	ch.Height = legendH + len(ch.Rows)*rowHeight + 4
	return ch
}

// bucket is one row of the size or age chart.
type bucket struct {
	label string
	blobs int
	bytes int64
	data  []dataAttr
}

func sizeRows(c *analysis.Capacity) []bucket {
	var out []bucket
	for _, b := range c.SizeHistogram {
		out = append(out, bucket{bucketLabel(b), b.Blobs, b.Bytes, []dataAttr{{"min", raw(b.Min)}, {"max", raw(b.Max)}}})
	}
	return out
}

func ageRows(c *analysis.Capacity) []bucket {
	var out []bucket
	for _, a := range c.Age {
		out = append(out, bucket{a.Label, a.Blobs, a.Bytes, []dataAttr{{"maxage", raw(a.MaxAgeSeconds)}}})
	}
	return out
}

// bucketChart draws, per bucket, its bytes and (thinner, below) its blob count, each
// against its own maximum.
func bucketChart(id string, rows []bucket) barChart {
	ch := barChart{ID: id, Width: bucketChartWidth, LabelWidth: 120}
	ch.Legend = []legendItem{{X: 0, Class: "bytes", Text: "bytes"}, {X: 90, Class: "count", Text: "blob count"}}
	var maxBytes, maxBlobs int64 = 1, 1
	for _, r := range rows {
		maxBytes, maxBlobs = max(maxBytes, r.bytes), max(maxBlobs, int64(r.blobs))
	}
	barX, barW := ch.LabelWidth+10, bucketChartWidth-ch.LabelWidth-10-150
	for i, r := range rows {
		y := legendH + i*rowHeight
		row := barRow{Y: y, TextY: y + barHeight - 3, Label: r.label, Key: r.label,
			Value:  nBlobs(r.blobs) + " · " + ib(r.bytes),
			ValueX: barX + barW + 8,
			Data:   append([]dataAttr{{"blobs", strconv.Itoa(r.blobs)}, {"bytes", raw(r.bytes)}}, r.data...)}
		if r.bytes > 0 {
			row.Segments = append(row.Segments, segment{X: barX, Y: y, W: max(1, int(r.bytes*int64(barW)/maxBytes)), H: 11, Class: "bytes", Title: ib(r.bytes)})
		}
		if r.blobs > 0 {
			row.Segments = append(row.Segments, segment{X: barX, Y: y + 13, W: max(1, int(int64(r.blobs)*int64(barW)/maxBlobs)), H: 5, Class: "count", Title: nBlobs(r.blobs)})
		}
		ch.Rows = append(ch.Rows, row)
	}
	ch.Height = legendH + len(ch.Rows)*rowHeight + 4
	return ch
}

// when is a time cell: RFC 3339 raw, a date shown; "—" when unknown.
func when(col string, t time.Time) cell {
	if t.IsZero() {
		return cell{Col: col, Raw: "", Text: "—"}
	}
	return cell{Col: col, Raw: t.UTC().Format(time.RFC3339), Text: t.UTC().Format("2006-01-02 15:04")}
}
