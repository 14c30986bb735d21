package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
)

// dotPath finds Graphviz's dot; tests that render with it check less without it,
// except on CI, which must have it.
func dotPath(t *testing.T) string {
	t.Helper()
	dot, err := exec.LookPath("dot")
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatal("dot is not installed (apt-get install graphviz); CI must run the graph rendering tests")
	}
	return dot
}

// chromiumPath finds Debian's chromium; the tests skip without it, except on CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI must run the HTML report tests")
	}
	t.Skip("chromium is not installed")
	return ""
}

// artifactDir is $REGSWEEP_ARTIFACTS (created) or a temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("REGSWEEP_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// headless runs chromium without network or profile state and returns its stdout.
func headless(t *testing.T, chromium string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
	}
	return out.Bytes()
}

// dom is a parsed page with lookups by id and by selector-like walks.
type dom struct{ root *html.Node }

func parseDOM(t *testing.T, b []byte) dom {
	t.Helper()
	n, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return dom{n}
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

// all returns the elements under n for which match is true, in document order.
func all(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

func (d dom) byID(t *testing.T, id string) *html.Node {
	t.Helper()
	l := all(d.root, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })
	if len(l) != 1 {
		t.Fatalf("%d elements with id %q", len(l), id)
	}
	return l[0]
}

// shown checks that element id carries raw in data-value and shows want in its
// .value child (or its own text).
func (d dom) shown(t *testing.T, id string, raw, want string) {
	t.Helper()
	n := d.byID(t, id)
	if v, _ := attr(n, "data-value"); v != raw {
		t.Errorf("#%s data-value = %q, JSON says %q", id, v, raw)
	}
	shownText := text(n)
	if vs := all(n, func(n *html.Node) bool { return hasClass(n, "value") }); len(vs) > 0 {
		shownText = text(vs[0])
	}
	if shownText != want {
		t.Errorf("#%s shows %q, want %q", id, shownText, want)
	}
}

// tableOrder returns the repository names of the table rows, top to bottom.
func (d dom) tableOrder(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, tr := range all(d.byID(t, "repos"), func(n *html.Node) bool { return n.Data == "tr" }) {
		if v, ok := attr(tr, "data-repo"); ok {
			names = append(names, v)
		}
	}
	return names
}

// htmlReport writes the HTML and JSON reports for one set of flags.
func htmlReport(t *testing.T, dir, out string, args ...string) (string, reportJSON) {
	t.Helper()
	page := mustRun(t, append([]string{"report", "--index", dir, "-o", "html"}, args...)...)
	file := filepath.Join(out, "report.html")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, decodeReport(t, mustRun(t, append([]string{"report", "--index", dir, "-o", "json"}, args...)...))
}

// TestHTMLReportInChromium renders the HTML report in headless Chromium and checks
// that every number the page shows is the JSON report's, that sorting by a column
// header works, and that it fetches nothing. It saves a screenshot.
func TestHTMLReportInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	artifacts := artifactDir(t)
	cases := []struct {
		name string
		cfg  string
		args []string
	}{
		{"sample", sampleConfig(t), []string{"-m", "--what-if-untag", "library/debian:12"}},
		{"synth-1", synthConfig(t, 1), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(artifacts, c.name)
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := scanned(t, c.cfg)
			file, rep := htmlReport(t, dir, out, c.args...)
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"<link", " src=", "@import", "url(", "<iframe", "http-equiv"} {
				if bytes.Contains(raw, []byte(bad)) {
					t.Errorf("report contains %q: it must not fetch anything", bad)
				}
			}
			checkDOM(t, parseDOM(t, headless(t, chromium, "--dump-dom", "file://"+file)), rep)

			// Sorting by clicking headers (the page's ?sort= hook clicks them).
			byReclaim := slices.Clone(rep.Repositories)
			slices.SortStableFunc(byReclaim, func(a, b gc.RepoStats) int {
				if a.ReclaimableBytes != b.ReclaimableBytes {
					return int(b.ReclaimableBytes - a.ReclaimableBytes)
				}
				return strings.Compare(a.Name, b.Name)
			})
			var want, wantDesc []string
			for _, r := range byReclaim {
				want = append(want, r.Name)
			}
			for i := len(rep.Repositories) - 1; i >= 0; i-- {
				wantDesc = append(wantDesc, rep.Repositories[i].Name)
			}
			for _, s := range []struct {
				query string
				want  []string
			}{{"reclaimable_bytes", want}, {"name,name", wantDesc}} {
				u := url.URL{Scheme: "file", Path: file, RawQuery: "sort=" + s.query}
				d := parseDOM(t, headless(t, chromium, "--dump-dom", u.String()))
				if got := d.tableOrder(t); !slices.Equal(got, s.want) {
					t.Errorf("sorted by %s: rows %v, want %v", s.query, got, s.want)
				}
				col := strings.Split(s.query, ",")[0]
				if v, _ := attr(d.byID(t, "repos"), "data-sorted-by"); v != col {
					t.Errorf("table data-sorted-by = %q after sorting by %s", v, col)
				}
			}

			shot := filepath.Join(out, "report.png")
			headless(t, chromium, "--screenshot="+shot, "--window-size=1400,1800", "--hide-scrollbars", "file://"+file)
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Fatalf("screenshot %s: %v", shot, err)
			}
			t.Logf("HTML report %s, screenshot %s", file, shot)
		})
	}
}

func checkDOM(t *testing.T, d dom, rep reportJSON) {
	t.Helper()
	c, s := rep.Capacity, rep.Summary
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	d.shown(t, "card-total-bytes", n(c.TotalBytes), ib(c.TotalBytes))
	d.shown(t, "card-live-bytes", n(c.LiveBytes), ib(c.LiveBytes))
	d.shown(t, "card-garbage-bytes", n(c.GarbageBytes), ib(c.GarbageBytes))
	d.shown(t, "card-kept-bytes", n(c.KeptBytes), ib(c.KeptBytes))
	d.shown(t, "card-dedup-ratio", strconv.FormatFloat(c.DedupRatio, 'f', -1, 64), strconv.FormatFloat(c.DedupRatio, 'f', 2, 64)+"×")
	for id, v := range map[string]int{"count-repositories": s.Repositories, "count-tags": s.Tags, "count-manifests": s.Manifests,
		"count-blobs": s.Blobs, "count-delete-manifests": s.DeleteManifests, "count-delete-layer-links": s.DeleteLayerLinks,
		"count-delete-uploads": s.DeleteUploads} {
		d.shown(t, id, strconv.Itoa(v), num(int64(v)))
	}
	if w := rep.WhatIf; w != nil {
		d.shown(t, "whatif-additional-bytes", n(w.AdditionalBytes), ib(w.AdditionalBytes))
		d.shown(t, "whatif-additional-blobs", strconv.Itoa(w.AdditionalBlobs), num(int64(w.AdditionalBlobs)))
		d.shown(t, "whatif-freed-bytes-now", n(w.FreedBytesNow), ib(w.FreedBytesNow))
		d.shown(t, "whatif-freed-bytes-after", n(w.FreedBytesAfter), ib(w.FreedBytesAfter))
		if got := text(d.byID(t, "whatif-sentence")); got != whatIfText(w) {
			t.Errorf("what-if sentence %q", got)
		}
	} else if l := all(d.root, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == "whatif" }); len(l) > 0 {
		t.Error("what-if panel without a what-if")
	}

	// The table: every cell's raw value and text against the JSON, rows largest first.
	byName := map[string]analysis.RepoCapacity{}
	for _, r := range c.Repositories {
		byName[r.Name] = r
	}
	rows := all(d.byID(t, "repos"), func(n *html.Node) bool { _, ok := attr(n, "data-repo"); return n.Data == "tr" && ok })
	if len(rows) != len(rep.Repositories) {
		t.Fatalf("table has %d rows, JSON %d repositories", len(rows), len(rep.Repositories))
	}
	var prev int64 = 1 << 62
	for _, tr := range rows {
		name, _ := attr(tr, "data-repo")
		r, ok := byName[name]
		if !ok {
			t.Fatalf("table row %q is not a repository of the JSON", name)
		}
		if r.Bytes > prev {
			t.Errorf("table not largest first at %s", name)
		}
		prev = r.Bytes
		want := map[string][2]string{
			"name": {name, name}, "tags": {strconv.Itoa(r.Tags), num(int64(r.Tags))}, "manifests": {strconv.Itoa(r.Manifests), num(int64(r.Manifests))},
			"bytes": {n(r.Bytes), ib(r.Bytes)}, "unique_bytes": {n(r.UniqueBytes), ib(r.UniqueBytes)},
			"shared_bytes": {n(r.SharedBytes), ib(r.SharedBytes)}, "reclaimable_bytes": {n(r.ReclaimableBytes), ib(r.ReclaimableBytes)},
		}
		if len(r.LargestImages) > 0 {
			li := r.LargestImages[0]
			want["largest_image"] = [2]string{li.Tags[0], strings.Join(li.Tags, ", ")}
			want["largest_image_bytes"] = [2]string{n(li.Bytes), ib(li.Bytes)}
		}
		if !r.LastPush.IsZero() {
			want["last_push"] = [2]string{r.LastPush.UTC().Format(time.RFC3339), r.LastPush.UTC().Format("2006-01-02 15:04")}
		}
		for _, td := range all(tr, func(n *html.Node) bool { return n.Data == "td" }) {
			col, _ := attr(td, "data-col")
			w, ok := want[col]
			if !ok {
				continue
			}
			delete(want, col)
			if v, _ := attr(td, "data-value"); v != w[0] || text(td) != w[1] {
				t.Errorf("%s %s: data-value %q shows %q; JSON %q (%q)", name, col, v, text(td), w[0], w[1])
			}
		}
		if len(want) > 0 {
			t.Errorf("%s: no cells for %v", name, want)
		}
	}

	// The namespace, tag and warning tables: every row of the JSON, in its order.
	cells := func(tr *html.Node) map[string][2]string {
		out := map[string][2]string{}
		for _, td := range all(tr, func(n *html.Node) bool { return n.Data == "td" }) {
			col, _ := attr(td, "data-col")
			v, _ := attr(td, "data-value")
			out[col] = [2]string{v, text(td)}
		}
		return out
	}
	tableRows := func(id string) []*html.Node {
		l := all(d.root, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })
		if len(l) == 0 {
			return nil
		}
		return all(l[0], func(n *html.Node) bool { return n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody" })
	}
	nsRows := tableRows("namespaces")
	if len(nsRows) != len(c.Namespaces) {
		t.Errorf("namespace table has %d rows, JSON %d", len(nsRows), len(c.Namespaces))
	}
	for i, tr := range nsRows {
		ns, got := c.Namespaces[i], cells(tr)
		if got["name"][0] != ns.Name || got["bytes"] != [2]string{n(ns.Bytes), ib(ns.Bytes)} || got["unique_bytes"] != [2]string{n(ns.UniqueBytes), ib(ns.UniqueBytes)} ||
			got["repositories"][0] != strconv.Itoa(ns.Repositories) {
			t.Errorf("namespace row %d: %v, JSON %+v", i, got, ns)
		}
	}
	tagRows := tableRows("tags")
	if len(tagRows) != min(len(c.Tags), maxHTMLTags) {
		t.Errorf("tag table has %d rows, JSON %d tags", len(tagRows), len(c.Tags))
	}
	for i, tr := range tagRows {
		tg, got := c.Tags[i], cells(tr)
		if got["tag"][0] != tg.Repository+":"+tg.Tag || got["unique_bytes"] != [2]string{n(tg.UniqueBytes), ib(tg.UniqueBytes)} ||
			got["bytes"] != [2]string{n(tg.Bytes), ib(tg.Bytes)} || got["digest"][0] != tg.Digest.String() {
			t.Errorf("tag row %d: %v, JSON %+v", i, got, tg)
		}
	}
	if warnRows := tableRows("warnings"); len(warnRows) != min(len(rep.Warnings), maxHTMLWarnings) {
		t.Errorf("warning table has %d rows, JSON %d warnings", len(warnRows), len(rep.Warnings))
	} else {
		for i, tr := range warnRows {
			if got := cells(tr); got["kind"][0] != rep.Warnings[i].Kind || got["path"][0] != rep.Warnings[i].Path {
				t.Errorf("warning row %d: %v, JSON %+v", i, got, rep.Warnings[i])
			}
		}
	}

	// Charts: bars carry the JSON's numbers.
	chartRows := func(id string) []*html.Node {
		return all(d.byID(t, id), func(n *html.Node) bool { return n.Data == "g" && hasClass(n, "row") })
	}
	repoBars := chartRows("chart-repos")
	if len(repoBars) != min(15, len(c.Repositories)) {
		t.Errorf("%d repository bars for %d repositories", len(repoBars), len(c.Repositories))
	}
	for _, g := range repoBars {
		name, _ := attr(g, "data-key")
		r := byName[name]
		for k, v := range map[string]int64{"data-bytes": r.Bytes, "data-unique": r.UniqueBytes, "data-shared": r.SharedBytes, "data-reclaimable": r.ReclaimableBytes} {
			if got, _ := attr(g, k); got != n(v) {
				t.Errorf("bar %s %s = %q, JSON %d", name, k, got, v)
			}
		}
	}
	sizes := chartRows("chart-sizes")
	if len(sizes) != len(c.SizeHistogram) {
		t.Fatalf("%d size rows, JSON %d buckets", len(sizes), len(c.SizeHistogram))
	}
	for i, g := range sizes {
		b := c.SizeHistogram[i]
		for k, v := range map[string]int64{"data-min": b.Min, "data-max": b.Max, "data-blobs": int64(b.Blobs), "data-bytes": b.Bytes} {
			if got, _ := attr(g, k); got != n(v) {
				t.Errorf("size bucket %d %s = %q, JSON %d", i, k, got, v)
			}
		}
		if !strings.Contains(text(g), ib(b.Bytes)) {
			t.Errorf("size bucket %d shows %q, not %s", i, text(g), ib(b.Bytes))
		}
	}
	ages := chartRows("chart-ages")
	if len(ages) != len(c.Age) {
		t.Fatalf("%d age rows, JSON %d", len(ages), len(c.Age))
	}
	for i, g := range ages {
		a := c.Age[i]
		if k, _ := attr(g, "data-key"); k != a.Label {
			t.Errorf("age row %d is %q, want %q", i, k, a.Label)
		}
		if got, _ := attr(g, "data-bytes"); got != n(a.Bytes) {
			t.Errorf("age %s bytes %q, JSON %d", a.Label, got, a.Bytes)
		}
	}

	// Image graphs of the 3 largest repositories.
	figs := all(d.root, func(n *html.Node) bool { return n.Data == "figure" && hasClass(n, "graph") })
	var drawn, wantDrawn []string
	for _, f := range figs {
		r, _ := attr(f, "data-repo")
		drawn = append(drawn, r)
		format, _ := attr(f, "data-format")
		svgs := all(f, func(n *html.Node) bool { return n.Data == "svg" })
		pres := all(f, func(n *html.Node) bool { return n.Data == "pre" })
		switch dot := dotPath(t); {
		case dot != "" && (format != "svg" || len(svgs) != 1):
			t.Errorf("graph %s: format %s with %d svg, want Graphviz SVG", r, format, len(svgs))
		case dot == "" && (format != "mermaid" || len(pres) != 1 || !strings.HasPrefix(text(pres[0]), "flowchart LR")):
			t.Errorf("graph %s: format %s, want the Mermaid source", r, format)
		}
	}
	for i, r := range c.Top.ByBytes {
		if i < 3 {
			wantDrawn = append(wantDrawn, r.Name)
		}
	}
	if !slices.Equal(drawn, wantDrawn) {
		t.Errorf("graphs of %v, want the 3 largest %v", drawn, wantDrawn)
	}
}

// TestHTMLReportWithoutGraphviz: without dot the graphs are Mermaid source in <pre>,
// and --html-repos picks them.
func TestHTMLReportWithoutGraphviz(t *testing.T) {
	dir := scanned(t, sampleConfig(t))
	page := mustRun(t, "report", "--index", dir, "-o", "html", "--dot", filepath.Join(t.TempDir(), "no-dot"), "--html-repos", "team/app/web")
	d := parseDOM(t, []byte(page))
	figs := all(d.root, func(n *html.Node) bool { return n.Data == "figure" })
	if len(figs) != 1 {
		t.Fatalf("%d graphs, want 1", len(figs))
	}
	if r, _ := attr(figs[0], "data-repo"); r != "team/app/web" {
		t.Errorf("graph of %s", r)
	}
	pres := all(figs[0], func(n *html.Node) bool { return n.Data == "pre" })
	if f, _ := attr(figs[0], "data-format"); f != "mermaid" || len(pres) != 1 || !strings.Contains(text(pres[0]), `(["latest"]):::tag`) {
		t.Errorf("format %s, pre %d:\n%s", f, len(pres), page)
	}
	if _, err := run(t, "report", "--index", dir, "-o", "html", "--html-repos", "no/such"); err == nil {
		t.Error("--html-repos of a missing repository: no error")
	}
}
