package graph

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

type countReads struct {
	driver.StorageDriver
	n atomic.Int64
}

func (c *countReads) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	c.n.Add(1)
	return c.StorageDriver.Reader(ctx, p, off)
}

// A job for a manifest whose early read is still queued reads it itself, and the
// early read is then skipped (no reader waits on a read nobody runs, none is made
// twice); a job for one whose early read has started waits for it and takes it.
func TestEarlyReadTakenByJob(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
		if err != nil {
			t.Fatal(err)
		}
		if err := mem.PutContent(ctx, p, b); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cfg := put([]byte("{}"))
	manifest := func(layers string) digest.Digest {
		return put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.String() + `","size":2},"layers":[` + layers + `]}`))
	}
	queued, started := manifest(""), manifest(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+cfg.String()+`","size":2}`)
	drv := &countReads{StorageDriver: mem}
	pool := newReadPool(ctx, drv, nil, 0) // no readers yet
	defer pool.close()

	idle := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			pool.mu.Lock()
			n := len(pool.queue)
			pool.mu.Unlock()
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the pool's queue did not drain")
			}
			time.Sleep(time.Millisecond)
		}
	}

	do := func(j readJob) parseResult {
		t.Helper()
		done := make(chan parseResult)
		go func() { done <- pool.do(j) }()
		select {
		case r := <-done:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("the job for %s did not return", j.d)
			return parseResult{}
		}
	}

	pool.early(queued)
	r := do(readJob{id: 7, d: queued})
	if r.err != nil || r.id != 7 || r.d != queued || !r.early.IsZero() {
		t.Fatalf("a job before its early read started: %+v", r)
	}
	go pool.work()
	idle()
	time.Sleep(20 * time.Millisecond) // a reader that read it all the same would have by now
	if n := drv.n.Load(); n != 1 {
		t.Errorf("a job before its early read started: %d reads, want 1", n)
	}

	pool.early(started)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		pool.mu.Lock()
		e := pool.earlies[started]
		ok := e != nil && e.started
		pool.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader did not start the early read")
		}
	}
	r = do(readJob{id: 8, d: started})
	if r.err != nil || r.id != 8 || r.d != started || r.early.IsZero() || len(r.parsed.Refs) != 2 {
		t.Fatalf("a job after its early read started: %+v", r)
	}
	if n := drv.n.Load(); n != 2 {
		t.Errorf("%d reads of two manifests, want 2", n)
	}
}

// Early reads stop at maxEarlyReads manifests and once their parses hold
// maxEarlyRefs references: what they hold until jobs take them is bounded. A digest
// told twice is read once.
func TestEarlyReadsBounded(t *testing.T) {
	pool := newReadPool(context.Background(), inmemory.New(), nil, 0) // nothing is read
	defer pool.close()
	for i := range maxEarlyReads + 10 {
		pool.early(digest.FromString(string(rune(i))))
	}
	pool.early(digest.FromString(string(rune(0))))
	if n := len(pool.queue); n != maxEarlyReads {
		t.Errorf("%d early reads queued, want at most %d", n, maxEarlyReads)
	}

	pool = newReadPool(context.Background(), inmemory.New(), nil, 0)
	defer pool.close()
	pool.early(digest.FromString("a"))
	pool.early(digest.FromString("a"))
	pool.earlyRefs = maxEarlyRefs // as if read
	pool.early(digest.FromString("b"))
	if n := len(pool.queue); n != 1 {
		t.Errorf("%d early reads queued, want 1: a digest told twice is read once, and none past %d references", n, maxEarlyRefs)
	}
}
