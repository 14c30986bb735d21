package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestProgressLogLines(t *testing.T) {
	var logs bytes.Buffer
	p := &progress{out: &logs, log: slog.New(slog.NewTextHandler(&logs, nil)), every: time.Millisecond}
	p.Phase("sweeping", 10)
	for range 5 {
		time.Sleep(2 * time.Millisecond)
		p.Add(1)
	}
	p.Done()
	out := logs.String()
	if !strings.Contains(out, "msg=sweeping") || !strings.Contains(out, "done=5") || !strings.Contains(out, "total=10") {
		t.Errorf("log lines lack phase, count or total:\n%s", out)
	}
	if strings.Contains(out, "\r") {
		t.Error("carriage returns written to a non-terminal")
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := &progress{out: &out, tty: true, every: time.Hour}
	p.Phase("reading manifests", 200)
	p.done = 50
	line := p.line(p.start.Add(10*time.Second), 20)
	for _, want := range []string{"reading manifests", "[=====", "25%", "50/200", "5/s", "ETA 30s"} {
		if !strings.Contains(line, want) {
			t.Errorf("bar %q lacks %q", line, want)
		}
	}
	p.Phase("listing storage", 0)
	p.done = 7
	if line := p.line(p.start.Add(time.Second), 20); !strings.Contains(line, "listing storage") || !strings.Contains(line, "7") || strings.Contains(line, "ETA") {
		t.Errorf("unknown-total line %q", line)
	}
	p.Done()
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("finished bar does not end its line")
	}
}
