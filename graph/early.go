package graph

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Early reads. On an object store the repository walks start before the blob store
// is listed (storage.WithEarlyRevisions); the manifests their revision links name are
// read then, so that the reads overlap the listing instead of following it. A job
// for the manifest takes the early read once the blob store is listed: the content
// was checked against its digest as any read's is. Its parse goes into the cache only
// if the listed blob is the file that was read: the same size, and a time at least a
// second before the read began (an object store's times are whole seconds, so a file
// written after the read has a later one). Otherwise the next build reads it again.

const (
	maxEarlyReads = 16384   // manifests read early, at most
	maxEarlyRefs  = 1 << 16 // references their parses hold, at most (a few MB)
)

// earlyRead is one manifest read before the blob store was listed.
type earlyRead struct {
	started bool // a reader took it (under the pool's lock)
	taken   bool // a job took it before any reader did: nothing to read
	start   time.Time
	done    chan struct{}
	r       parseResult
}

// earlyFile is what an early read saw of the blob, for the cache's validator.
type earlyFile struct{ size, start int64 }

// earlyRevision starts reading d, named by a revision link found before the blob
// store is listed, unless the cache may hold its parse (a rerun's manifests) or
// enough is read early already. Called from the scan, as its entries are.
func (b *builder) earlyRevision(d digest.Digest) {
	if b.cache.find(d) != nil {
		return
	}
	b.pool.early(d)
}

// early queues an early read of d.
func (p *readPool) early(d digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.earlies[d]; ok || len(p.earlies) >= maxEarlyReads || p.earlyRefs >= maxEarlyRefs || p.closed {
		return
	}
	if p.earlies == nil {
		p.earlies = map[digest.Digest]*earlyRead{}
	}
	e := &earlyRead{done: make(chan struct{})}
	p.earlies[d] = e
	p.queue = append(p.queue, readJob{d: d, early: e})
	p.cond.Signal()
}

// takeEarly returns the early read of d to use for a job, waiting for it if a reader
// has it, or nil: none, or not started (the job reads it itself), or no parse.
func (p *readPool) takeEarly(d digest.Digest) *earlyRead {
	p.mu.Lock()
	e := p.earlies[d]
	if e == nil {
		p.mu.Unlock()
		return nil
	}
	delete(p.earlies, d)
	if !e.started {
		e.taken = true // still queued: its reader skips it
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	<-e.done
	if e.r.err != nil || e.r.missing {
		return nil // read again: the listing found the blob since
	}
	return e
}

// readEarly runs an early read, unless a job took it first.
func (p *readPool) readEarly(j readJob) {
	e := j.early
	p.mu.Lock()
	if e.taken {
		p.mu.Unlock()
		return
	}
	e.started = true
	p.mu.Unlock()
	e.start = time.Now()
	e.r = readManifest(p.ctx, p.drv, 0, j.d)
	p.mu.Lock()
	p.earlyRefs += resultRefs(e.r)
	p.mu.Unlock()
	close(e.done)
}

// cacheable says whether the listed blob (size, time in Unix ns) is the file an early
// read of it saw.
func (f earlyFile) cacheable(size, modTime int64) bool {
	return size == f.size && modTime != 0 && modTime <= f.start-int64(time.Second)
}
