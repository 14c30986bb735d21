package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/sweep"
)

// windowFlags bound a real run to a maintenance window.
type windowFlags struct {
	until       string
	maxDuration time.Duration
}

func (w *windowFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&w.until, "until", "", "end of the maintenance window: HH:MM (local time, the next one to come) or RFC 3339. No delete starts after it; the run stops cleanly and exits 5, and the next run continues")
	f.DurationVar(&w.maxDuration, "max-duration", 0, "end the maintenance window this long after the run starts (with --until, the earlier end counts)")
}

// deadline returns when the window ends for a run started at start; zero when no
// window was given.
func (w windowFlags) deadline(start time.Time) (time.Time, error) {
	var end time.Time
	if w.until != "" {
		t, err := parseUntil(w.until, start)
		if err != nil {
			return time.Time{}, err
		}
		end = t
	}
	if w.maxDuration < 0 {
		return time.Time{}, fmt.Errorf("--max-duration %v: want more than 0", w.maxDuration)
	}
	if w.maxDuration > 0 {
		if t := start.Add(w.maxDuration); end.IsZero() || t.Before(end) {
			end = t
		}
	}
	return end, nil
}

// parseUntil reads HH:MM as the next such local time after start, or an RFC 3339
// time, which must lie ahead.
func parseUntil(s string, start time.Time) (time.Time, error) {
	if hm, err := time.ParseInLocation("15:04", s, time.Local); err == nil {
		y, mo, d := start.In(time.Local).Date()
		t := time.Date(y, mo, d, hm.Hour(), hm.Minute(), 0, 0, time.Local)
		if !t.After(start) {
			t = time.Date(y, mo, d+1, hm.Hour(), hm.Minute(), 0, 0, time.Local)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--until %q: want HH:MM (local time) or an RFC 3339 time such as 2026-12-01T06:00:00+01:00", s)
	}
	if !t.After(start) {
		return time.Time{}, fmt.Errorf("--until %s is in the past", t.Format(time.RFC3339))
	}
	return t, nil
}

// errWindowEnded is the cause of a scan cut short by the window's end.
var errWindowEnded = errors.New("the maintenance window ended")

// windowStopped is the error of a run that stopped at the window's end.
func windowStopped(what string) error {
	return &codeError{exitWindow, fmt.Errorf("stopped at the window's end; run again to continue (%s)", what)}
}

// rateFile, beside the index, records the delete rate the last sweep of this
// storage measured: the next window's estimate starts from it.
const rateFile = "sweep-rate.json"

type rateRecord struct {
	DeletesPerSecond float64   `json:"deletes_per_second"`
	Deletes          int       `json:"deletes"`
	Workers          int       `json:"workers"`
	Measured         time.Time `json:"measured"`
}

func (s *session) loadRate() (rateRecord, bool) {
	var r rateRecord
	b, err := os.ReadFile(filepath.Join(s.dir, rateFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot read the delete rate of the last sweep", "error", err)
		}
		return r, false
	}
	if err := json.Unmarshal(b, &r); err != nil || r.DeletesPerSecond <= 0 {
		s.log.Warn("ignoring a damaged delete rate record", "file", filepath.Join(s.dir, rateFile))
		return r, false
	}
	return r, true
}

// saveRate records what a sweep measured; a few deletes say too little.
func (s *session) saveRate(res *sweep.Result, workers int) {
	if res == nil {
		return
	}
	deletes := res.DeletedTags + res.DeletedTagIndex + res.DeletedManifests + res.DeletedBlobs + res.DeletedLayerLinks + res.DeletedUploads
	if deletes < 50 || res.DeletesPerSecond <= 0 {
		return
	}
	b, _ := json.Marshal(rateRecord{DeletesPerSecond: res.DeletesPerSecond, Deletes: deletes, Workers: workers, Measured: time.Now().UTC()})
	if err := writeFile(filepath.Join(s.dir, rateFile), b); err != nil {
		s.log.Warn("cannot record the delete rate", "error", err)
	}
}

// estimate says whether the plan fits the window at the last measured delete rate
// (capped by --max-ops), and logs it.
func (s *session) estimate(p *gc.Plan, deadline time.Time, maxOps float64) *analysis.Window {
	if deadline.IsZero() {
		return nil
	}
	w := &analysis.Window{Until: deadline, Items: planItems(p)}
	left := time.Until(deadline)
	rec, ok := s.loadRate()
	rate := rec.DeletesPerSecond
	if maxOps > 0 && (!ok || maxOps < rate) {
		rate, ok = maxOps, true
	}
	if !ok {
		s.log.Info("no delete rate measured on this storage yet: the estimate follows the first deletes", "items", w.Items, "window left", left.Round(time.Second))
		return w
	}
	w.DeletesPerSecond, w.RateMeasured = rate, rec.Measured
	need := time.Duration(float64(w.Items) / rate * float64(time.Second))
	w.EstimatedSeconds = need.Seconds()
	fits := need <= left
	w.Fits = &fits
	if fits {
		s.log.Info("the plan fits the window at the last measured delete rate", "items", w.Items, "rate/s", int(rate), "needs", need.Round(time.Second), "window left", left.Round(time.Second))
	} else {
		s.log.Warn("the plan does not fit the window at the last measured delete rate: the run will stop at the window's end; run again to continue",
			"items", w.Items, "rate/s", int(rate), "needs", need.Round(time.Second), "window left", left.Round(time.Second))
	}
	return w
}

func planItems(p *gc.Plan) int {
	n := len(p.Tags) + len(p.Manifests) + len(p.Blobs) + len(p.LayerLinks) + len(p.Uploads)
	for _, m := range p.Manifests {
		n += len(m.TagIndex)
	}
	return n
}

// writeWindowText says when the window ends, whether the plan fits, and, for a run
// it stopped, what is left.
func writeWindowText(w io.Writer, win *analysis.Window, res *sweep.Result) {
	if win == nil {
		return
	}
	fmt.Fprintf(w, "\nWindow:   ends %s; the plan holds %s", win.Until.Local().Format("2006-01-02 15:04 MST"), plural(win.Items, "delete"))
	switch {
	case win.Fits == nil:
		fmt.Fprintf(w, " (no delete rate measured on this storage yet)\n")
	case *win.Fits:
		fmt.Fprintf(w, ", about %s at %.0f deletes/s: it fits\n", time.Duration(win.EstimatedSeconds*float64(time.Second)).Round(time.Second), win.DeletesPerSecond)
	default:
		fmt.Fprintf(w, ", about %s at %.0f deletes/s: it does not fit; the run stops at the window's end and the next run continues\n", time.Duration(win.EstimatedSeconds*float64(time.Second)).Round(time.Second), win.DeletesPerSecond)
	}
	if win.Stopped {
		fmt.Fprintf(w, "Stopped at the window's end")
		if res != nil && res.Remaining != nil {
			l := res.Remaining
			fmt.Fprintf(w, ": left %s, %s, %s, %s (%s), %s, %s",
				plural(l.Tags, "tag"), plural(l.Manifests, "manifest revision"), plural(l.TagIndex, "tag history entry"), nBlobs(l.Blobs), ib(l.Bytes), plural(l.LayerLinks, "layer link"), plural(l.Uploads, "upload"))
		}
		fmt.Fprintf(w, ". Run the same command again to continue.\n")
	}
}
