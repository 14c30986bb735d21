package graph

import (
	"fmt"
	"slices"
)

// manifestTable holds a loaded graph's manifests in 16 bytes each: sorted ids and a
// small record beside each, with media types as numbers into a table of the few
// that occur. A map of Manifest values took ~180 bytes a manifest (180 MB at the 1M
// manifests of a 100M-blob registry). The rare manifests a record cannot hold
// (unreadable ones, with what they mention) are kept whole in a map.
type manifestTable struct {
	ids   []uint32
	recs  []manifestRec
	types []string          // types[0] is ""
	typeN map[string]uint16 // while loading
	whole map[uint32]Manifest
}

type manifestRec struct {
	subject uint32
	mt, at  uint16
	flags   uint8
}

const (
	recMissing uint8 = 1 << iota
	recWhole         // held in whole
)

// newManifestTable makes a table with room for about n manifests (the count the
// scan recorded), so that loading does not leave the slack of growing.
func newManifestTable(n int) *manifestTable {
	n = min(max(n, 0), 1<<26)
	return &manifestTable{ids: make([]uint32, 0, n), recs: make([]manifestRec, 0, n),
		types: []string{""}, typeN: map[string]uint16{"": 0}, whole: map[uint32]Manifest{}}
}

// add appends m; ids must come in increasing order (as the index holds them).
func (t *manifestTable) add(m Manifest) error {
	if n := len(t.ids); n > 0 && m.ID <= t.ids[n-1] {
		return fmt.Errorf("%w: manifest id %d after %d", ErrDamaged, m.ID, t.ids[n-1])
	}
	r := manifestRec{subject: m.Subject}
	if m.Missing {
		r.flags |= recMissing
	}
	mt, ok1 := t.typeNum(m.MediaType)
	at, ok2 := t.typeNum(m.ArtifactType)
	r.mt, r.at = mt, at
	if !ok1 || !ok2 || m.Unreadable != "" || m.Partial || len(m.Mentions) > 0 {
		r.flags |= recWhole
		m.Digest, m.Platforms = "", nil
		t.whole[m.ID] = m
	}
	t.ids = append(t.ids, m.ID)
	t.recs = append(t.recs, r)
	return nil
}

// typeNum numbers a media type; false once 65535 distinct types are numbered.
func (t *manifestTable) typeNum(s string) (uint16, bool) {
	if n, ok := t.typeN[s]; ok {
		return n, true
	}
	if len(t.types) > 0xFFFF {
		return 0, false
	}
	n := uint16(len(t.types))
	t.types = append(t.types, s)
	t.typeN[s] = n
	return n, true
}

// seal drops what only loading needed.
func (t *manifestTable) seal() { t.typeN = nil }

func (t *manifestTable) get(id uint32) (Manifest, bool) {
	i, ok := slices.BinarySearch(t.ids, id)
	if !ok {
		return Manifest{}, false
	}
	r := t.recs[i]
	if r.flags&recWhole != 0 {
		return t.whole[id], true
	}
	return Manifest{ID: id, MediaType: t.types[r.mt], ArtifactType: t.types[r.at], Subject: r.subject, Missing: r.flags&recMissing != 0}, true
}
