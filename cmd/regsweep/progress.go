package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/regsweep/regsweep/storage"
)

// progress renders storage.Progress: a bar with rate and ETA on a terminal, a log
// line every few seconds otherwise.
type progress struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	log   *slog.Logger
	every time.Duration
	name  string
	total int64
	done  int64
	start time.Time
	last  time.Time
}

var _ storage.Progress = (*progress)(nil)

func newProgress(w io.Writer, log *slog.Logger, quiet bool) storage.Progress {
	if quiet {
		return storage.NoProgress{}
	}
	f, ok := w.(*os.File)
	return &progress{out: w, tty: ok && term.IsTerminal(int(f.Fd())), log: log, every: 5 * time.Second}
}

// Phase implements storage.Progress.
func (p *progress) Phase(name string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finish()
	p.name, p.total, p.done, p.start, p.last = name, total, 0, time.Now(), time.Now()
}

// Add implements storage.Progress.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := time.Now()
	switch {
	case p.tty && now.Sub(p.last) >= 100*time.Millisecond:
		p.last = now
		fmt.Fprint(p.out, "\r"+p.line(now, 30)+"\x1b[K")
	case !p.tty && now.Sub(p.last) >= p.every:
		p.last = now
		p.log.Info(p.name, "done", p.done, "total", p.total, "rate/s", int(p.rate(now)), "eta", p.eta(now))
	}
}

func (p *progress) rate(now time.Time) float64 {
	if s := now.Sub(p.start).Seconds(); s > 0 {
		return float64(p.done) / s
	}
	return 0
}

func (p *progress) eta(now time.Time) string {
	r := p.rate(now)
	if p.total <= 0 || r == 0 || p.done >= p.total {
		return "-"
	}
	return (time.Duration(float64(p.total-p.done)/r) * time.Second).Round(time.Second).String()
}

func (p *progress) line(now time.Time, width int) string {
	if p.total <= 0 {
		return fmt.Sprintf("%-18s %d  %.0f/s  %s", p.name, p.done, p.rate(now), now.Sub(p.start).Round(time.Second))
	}
	frac := min(1, float64(p.done)/float64(p.total))
	n := int(frac * float64(width))
	return fmt.Sprintf("%-18s [%s%s] %3.0f%% %d/%d  %.0f/s  ETA %s", p.name, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		frac*100, p.done, p.total, p.rate(now), p.eta(now))
}

// finish ends the current bar's line.
func (p *progress) finish() {
	if p.tty && p.name != "" {
		fmt.Fprint(p.out, "\r"+p.line(time.Now(), 30)+"\x1b[K\n")
	}
}

// Done ends the last phase.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finish()
	p.name = ""
}
