package storage

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
)

// Counting wraps a driver and counts its calls by method. Walk is replayed through
// the wrapper's List and Stat (distribution's fallback walk, as the filesystem and
// inmemory drivers walk anyway), so every directory listed is counted. Drivers with a
// native recursive listing (S3) are better counted at the HTTP layer.
type Counting struct {
	driver.StorageDriver
	calls [nOps]atomic.Int64
}

// Op is a driver method counted by Counting.
type Op int

// Counted methods.
const (
	OpList Op = iota
	OpStat
	OpGetContent
	OpReader
	OpDelete
	OpPutContent
	OpWalk
	nOps
)

var opNames = [nOps]string{"list", "stat", "get", "reader", "delete", "put", "walk"}

func (o Op) String() string { return opNames[o] }

var _ driver.StorageDriver = (*Counting)(nil)

// NewCounting wraps d.
func NewCounting(d driver.StorageDriver) *Counting { return &Counting{StorageDriver: d} }

// Count returns the calls of one method so far.
func (c *Counting) Count(o Op) int64 { return c.calls[o].Load() }

// Total returns all calls so far.
func (c *Counting) Total() int64 {
	var n int64
	for i := range c.calls {
		n += c.calls[i].Load()
	}
	return n
}

// Counts returns calls by method name.
func (c *Counting) Counts() map[string]int64 {
	m := map[string]int64{}
	for i := range c.calls {
		if n := c.calls[i].Load(); n > 0 {
			m[opNames[i]] = n
		}
	}
	return m
}

// List implements driver.StorageDriver.
func (c *Counting) List(ctx context.Context, p string) ([]string, error) {
	c.calls[OpList].Add(1)
	return c.StorageDriver.List(ctx, p)
}

// Stat implements driver.StorageDriver.
func (c *Counting) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	c.calls[OpStat].Add(1)
	return c.StorageDriver.Stat(ctx, p)
}

// GetContent implements driver.StorageDriver.
func (c *Counting) GetContent(ctx context.Context, p string) ([]byte, error) {
	c.calls[OpGetContent].Add(1)
	return c.StorageDriver.GetContent(ctx, p)
}

// Reader implements driver.StorageDriver.
func (c *Counting) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	c.calls[OpReader].Add(1)
	return c.StorageDriver.Reader(ctx, p, off)
}

// Delete implements driver.StorageDriver.
func (c *Counting) Delete(ctx context.Context, p string) error {
	c.calls[OpDelete].Add(1)
	return c.StorageDriver.Delete(ctx, p)
}

// PutContent implements driver.StorageDriver.
func (c *Counting) PutContent(ctx context.Context, p string, b []byte) error {
	c.calls[OpPutContent].Add(1)
	return c.StorageDriver.PutContent(ctx, p, b)
}

// Walk implements driver.StorageDriver through List and Stat, so they are counted.
func (c *Counting) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	c.calls[OpWalk].Add(1)
	return driver.WalkFallback(ctx, c, p, f, opts...)
}

// Latency wraps a driver and sleeps before every call, to model object storage on a
// local driver. Walk goes through the wrapper's List, so each listing pays too.
type Latency struct {
	driver.StorageDriver
	delay time.Duration
}

var _ driver.StorageDriver = (*Latency)(nil)

// NewLatency wraps d with a delay per call.
func NewLatency(d driver.StorageDriver, delay time.Duration) *Latency {
	return &Latency{StorageDriver: d, delay: delay}
}

func (l *Latency) wait(ctx context.Context) error {
	t := time.NewTimer(l.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// List implements driver.StorageDriver.
func (l *Latency) List(ctx context.Context, p string) ([]string, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.List(ctx, p)
}

// Stat implements driver.StorageDriver.
func (l *Latency) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.Stat(ctx, p)
}

// GetContent implements driver.StorageDriver.
func (l *Latency) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.GetContent(ctx, p)
}

// Reader implements driver.StorageDriver.
func (l *Latency) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.StorageDriver.Reader(ctx, p, off)
}

// Delete implements driver.StorageDriver.
func (l *Latency) Delete(ctx context.Context, p string) error {
	if err := l.wait(ctx); err != nil {
		return err
	}
	return l.StorageDriver.Delete(ctx, p)
}

// Walk implements driver.StorageDriver through List and Stat, so they pay the delay.
func (l *Latency) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, l, p, f, opts...)
}
