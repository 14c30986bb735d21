package graph

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

// Records that exist once per blob or per link are packed many to a key: a registry
// of ten million blobs then costs the index thousands of keys, not tens of millions,
// which is what makes its writes, compactions and memory scale.
//
//	I<chunk u32>          -> the records of ids chunk*idChunk ... in id order:
//	                         flags u8, [size u64, modtime i64 if flags&1], then the
//	                         digest: 32 raw bytes if flags&2 (sha256), else len u8, text
//	L<repo>\0<run u32>    -> layer links of repo: id u32, target u32, modtime i64,
//	                         len u16, problem text
//	E<from u32>           -> the references of one manifest: kind u8, to u32
const idChunk = 1024

func chunkKey(id uint32) []byte { return idKey(pID, id/idChunk) }

func appendIDRecord(buf []byte, d digest.Digest, b *Blob) []byte {
	flagsAt := len(buf)
	if b != nil {
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint64(buf, uint64(b.Size))
		var mt int64 // 0: unknown (a deferred stat that was not needed)
		if !b.ModTime.IsZero() {
			mt = b.ModTime.UnixNano()
		}
		buf = binary.BigEndian.AppendUint64(buf, uint64(mt))
	} else {
		buf = append(buf, 0)
	}
	if raw, ok := storage.SHA256Bytes(d); ok {
		buf[flagsAt] |= 2
		return append(buf, raw[:]...)
	}
	buf = append(buf, byte(len(d)))
	return append(buf, d...)
}

// decodeIDChunk calls fn for each record of a chunk value, in id order.
func decodeIDChunk(first uint32, v []byte, fn func(id uint32, d digest.Digest, b *Blob) error) error {
	return walkIDChunk(first, v, true, fn)
}

// walkIDChunk is decodeIDChunk that builds digest strings only when withDigest:
// most readers want sizes, and a string per blob is most of the garbage of a plan.
func walkIDChunk(first uint32, v []byte, withDigest bool, fn func(id uint32, d digest.Digest, b *Blob) error) error {
	id := first
	for len(v) > 0 {
		flags := v[0]
		v = v[1:]
		var blob *Blob
		if flags&1 != 0 {
			if len(v) < 16 {
				return fmt.Errorf("index id chunk %d: truncated record", first/idChunk)
			}
			blob = &Blob{ID: id, Size: int64(binary.BigEndian.Uint64(v))}
			if mt := int64(binary.BigEndian.Uint64(v[8:])); mt != 0 {
				blob.ModTime = time.Unix(0, mt)
			}
			v = v[16:]
		}
		n, err := digestLen(flags, v)
		if err != nil {
			return fmt.Errorf("index id chunk %d: %w", first/idChunk, err)
		}
		var d digest.Digest
		if withDigest {
			d = decodeDigest(flags, v[:n])
		}
		v = v[n:]
		if blob != nil {
			blob.Digest = d
		}
		if err := fn(id, d, blob); err != nil {
			return err
		}
		id++
	}
	return nil
}

// digestLen is the length of the encoded digest at the start of v.
func digestLen(flags byte, v []byte) (int, error) {
	n := 32
	if flags&2 == 0 {
		if len(v) < 1 {
			return 0, fmt.Errorf("truncated digest")
		}
		n = 1 + int(v[0])
	}
	if len(v) < n {
		return 0, fmt.Errorf("truncated digest")
	}
	return n, nil
}

func decodeDigest(flags byte, v []byte) digest.Digest {
	if flags&2 != 0 {
		return digest.Digest("sha256:" + hex.EncodeToString(v))
	}
	return digest.Digest(v[1:])
}

// digestAt decodes the digest of the i-th record of a chunk value.
func digestAt(v []byte, i int) (digest.Digest, bool) {
	for ; len(v) > 0; i-- {
		flags := v[0]
		v = v[1:]
		if flags&1 != 0 {
			if len(v) < 16 {
				return "", false
			}
			v = v[16:]
		}
		n, err := digestLen(flags, v)
		if err != nil {
			return "", false
		}
		if i == 0 {
			return decodeDigest(flags, v[:n]), true
		}
		v = v[n:]
	}
	return "", false
}

func appendLinkRecord(buf []byte, id, target uint32, mt time.Time, bad string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, id)
	buf = binary.BigEndian.AppendUint32(buf, target)
	var n int64
	if !mt.IsZero() {
		n = mt.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	if len(bad) > 1<<16-1 {
		bad = bad[:1<<16-1]
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(bad)))
	return append(buf, bad...)
}

func decodeLinkRun(repo string, v []byte, fn func(Link) error) error {
	for len(v) > 0 {
		if len(v) < 18 || len(v) < 18+int(binary.BigEndian.Uint16(v[16:])) {
			return fmt.Errorf("index layer links of %s: truncated record", repo)
		}
		l := Link{Repo: repo, ID: binary.BigEndian.Uint32(v), Target: binary.BigEndian.Uint32(v[4:])}
		if n := int64(binary.BigEndian.Uint64(v[8:])); n != 0 {
			l.ModTime = time.Unix(0, n)
		}
		bl := int(binary.BigEndian.Uint16(v[16:]))
		l.Bad = string(v[18 : 18+bl])
		v = v[18+bl:]
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}
