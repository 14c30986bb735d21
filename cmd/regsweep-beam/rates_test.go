package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/storage"
)

// BenchmarkRequestRates measures what one worker process does per second through
// distribution's s3 driver at a given request latency with 64 requests in flight
// (as --workers 64): listing pages of 1000 keys, manifest-sized GETs and blob
// directory deletes (a listing and a batch delete each). The fake S3 server runs in
// the same process, so its CPU counts against the worker's: the rates are a floor.
// The sizing in docs/scale-out.md starts from them.
func BenchmarkRequestRates(b *testing.B) {
	const inFlight, keys = 64, 4000
	for _, latency := range []time.Duration{20 * time.Millisecond} {
		ctx := context.Background()
		s3, drv := benchenv.StartS3(b, "/")
		path := func(i int) string {
			h := fmt.Sprintf("%x", sha256.Sum256(fmt.Append(nil, i)))
			return "/docker/registry/v2/blobs/sha256/" + h[:2] + "/" + h + "/data"
		}
		fill := func() {
			s3.SetLatency(0)
			defer s3.SetLatency(latency)
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(inFlight)
			for i := range keys {
				g.Go(func() error { return drv.PutContent(gctx, path(i), make([]byte, 2000)) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		fill()
		run := func(name string, n, per int, op func(i int) error) {
			b.Run(fmt.Sprintf("%s/latency=%v", name, latency), func(b *testing.B) {
				for b.Loop() {
					if name == "delete" {
						fill() // what the last run deleted
					}
					var done atomic.Int64
					start := time.Now()
					g, _ := errgroup.WithContext(ctx)
					g.SetLimit(inFlight)
					for i := range n {
						g.Go(func() error { done.Add(1); return op(i) })
					}
					if err := g.Wait(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(done.Load()*int64(per))/time.Since(start).Seconds(), "requests/s")
				}
			})
		}
		run("get", keys, 1, func(i int) error { _, err := drv.GetContent(ctx, path(i)); return err })
		// A walk of the 4000 keys is 4 listing pages of 1000, one after another.
		run("list-page", inFlight, keys/1000, func(int) error {
			return drv.Walk(ctx, "/docker/registry/v2/blobs/sha256", func(driver.FileInfo) error { return nil })
		})
		// A directory delete is a listing and a batch delete.
		run("delete", keys, 2, func(i int) error { return drv.Delete(ctx, strings.TrimSuffix(path(i), "/data")) })
		// The sweep's batches: a thousand blob data files a request (files/s).
		batcher, ok := storage.NewBatcher(drv)
		if !ok {
			b.Fatal("no batcher for the s3 driver")
		}
		b.Run(fmt.Sprintf("batch-delete/latency=%v", latency), func(b *testing.B) {
			for b.Loop() {
				fill()
				start := time.Now()
				g, _ := errgroup.WithContext(ctx)
				g.SetLimit(inFlight)
				for first := 0; first < keys; first += storage.BatchMax {
					g.Go(func() error {
						var paths []string
						for i := first; i < min(first+storage.BatchMax, keys); i++ {
							paths = append(paths, path(i))
						}
						return batcher.DeleteFiles(ctx, paths)
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(keys)/time.Since(start).Seconds(), "files/s")
			}
		})
	}
}
