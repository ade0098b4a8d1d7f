package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// The side files of a replica, beside its segment files (docs/FORMAT.md). Each is small and
// replaced whole, crash-safely (temporary file, fsync, rename, fsync of the directory): a
// reader finds the old content or the new, never a mix. All integers little-endian.
//
//	0       8     10     12      16
//	+-------+-----+------+-------+---------+-----+
//	| magic | ver | rsvd | count | records | CRC |
//	+-------+-----+------+-------+---------+-----+
//
//	magic    "SLRTERMS" (raft.terms), "SLRCONFS" (raft.conf) or "SLRSTATE" (raft.state)
//	ver      uint16, sideVersion
//	count    uint32, records that follow
//	CRC      uint32, CRC32C of every byte before it
//
// raft.terms record, 24 bytes: index uint64, term uint64, kind uint8 (kindStart: the first
// entry of a term, a record with a frame; kindEmpty: an entry without a record, a gap in the
// positions; kindConf: a configuration change, kept in raft.conf), 7 zero bytes. Term(i) is the
// term of the last record at or below i. The file is written before the frames of the entries
// it covers.
//
// raft.conf record: index uint64, term uint64, type uint32 (raftpb.EntryType), len uint32,
// data (len bytes, at most maxConfData).
//
// raft.state, one record of 24 bytes: term uint64, vote uint64, commit uint64 (Raft's
// HardState). Written when term or vote change, before messages are sent; commit is stored
// then too, and may lag (Raft learns it again).
const (
	termsName   = "raft.terms"
	confName    = "raft.conf"
	stateName   = "raft.state"
	sideVersion = 1
	sideHeader  = 16
	termRecSize = 24
	stateSize   = 24
	maxConfData = 1 << 20
	maxSideFile = 64 << 20
)

const (
	kindStart = 1
	kindEmpty = 2
	kindConf  = 3
)

// termRec is one raft.terms record.
type termRec struct {
	index, term uint64
	kind        uint8
}

// confRec is one raft.conf record: a configuration change entry.
type confRec struct {
	index, term uint64
	typ         uint32
	data        []byte
}

func appendSideHeader(b []byte, magic string, count int) []byte {
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, sideVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return binary.LittleEndian.AppendUint32(b, uint32(count))
}

func sealSide(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, crc.Checksum(b)) }

func encodeTerms(recs []termRec) []byte {
	b := appendSideHeader(make([]byte, 0, sideHeader+len(recs)*termRecSize+4), "SLRTERMS", len(recs))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.index)
		b = binary.LittleEndian.AppendUint64(b, r.term)
		b = append(b, r.kind, 0, 0, 0, 0, 0, 0, 0)
	}
	return sealSide(b)
}

func encodeConfs(recs []confRec) []byte {
	b := appendSideHeader(nil, "SLRCONFS", len(recs))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.index)
		b = binary.LittleEndian.AppendUint64(b, r.term)
		b = binary.LittleEndian.AppendUint32(b, r.typ)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.data)))
		b = append(b, r.data...)
	}
	return sealSide(b)
}

func encodeState(st hardState) []byte {
	b := appendSideHeader(nil, "SLRSTATE", 1)
	b = binary.LittleEndian.AppendUint64(b, st.term)
	b = binary.LittleEndian.AppendUint64(b, st.vote)
	b = binary.LittleEndian.AppendUint64(b, st.commit)
	return sealSide(b)
}

// checkSide checks a side file's header and CRC and returns its record count and body.
func checkSide(b []byte, magic string) (count int, body []byte, err error) {
	if len(b) < sideHeader+4 {
		return 0, nil, fmt.Errorf("%d bytes", len(b))
	}
	if string(b[:8]) != magic {
		return 0, nil, fmt.Errorf("bad magic %q", b[:8])
	}
	n := len(b) - 4
	if got, want := binary.LittleEndian.Uint32(b[n:]), crc.Checksum(b[:n]); got != want {
		return 0, nil, fmt.Errorf("CRC %08x, want %08x", got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != sideVersion {
		return 0, nil, fmt.Errorf("unknown version %d", v)
	}
	return int(binary.LittleEndian.Uint32(b[12:])), b[sideHeader:n], nil
}

func decodeTerms(b []byte) ([]termRec, error) {
	count, body, err := checkSide(b, "SLRTERMS")
	if err != nil {
		return nil, err
	}
	if len(body) != count*termRecSize {
		return nil, fmt.Errorf("%d records in %d bytes", count, len(body))
	}
	recs := make([]termRec, count)
	for i := range recs {
		r := body[i*termRecSize:]
		recs[i] = termRec{index: binary.LittleEndian.Uint64(r), term: binary.LittleEndian.Uint64(r[8:]), kind: r[16]}
		if k := recs[i].kind; k < kindStart || k > kindConf {
			return nil, fmt.Errorf("record %d: kind %d", i, k)
		}
		if i > 0 && (recs[i].index <= recs[i-1].index || recs[i].term < recs[i-1].term) {
			return nil, fmt.Errorf("record %d: (%d, %d) after (%d, %d)", i, recs[i].index, recs[i].term, recs[i-1].index, recs[i-1].term)
		}
	}
	return recs, nil
}

func decodeConfs(b []byte) ([]confRec, error) {
	count, body, err := checkSide(b, "SLRCONFS")
	if err != nil {
		return nil, err
	}
	recs := make([]confRec, 0, min(count, 1024))
	for i := range count {
		if len(body) < 24 {
			return nil, fmt.Errorf("record %d cut short", i)
		}
		r := confRec{index: binary.LittleEndian.Uint64(body), term: binary.LittleEndian.Uint64(body[8:]), typ: binary.LittleEndian.Uint32(body[16:])}
		n := binary.LittleEndian.Uint32(body[20:])
		if n > maxConfData || int(n) > len(body)-24 {
			return nil, fmt.Errorf("record %d: %d bytes of data", i, n)
		}
		r.data = append([]byte(nil), body[24:24+n]...)
		body = body[24+n:]
		recs = append(recs, r)
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%d bytes after the records", len(body))
	}
	return recs, nil
}

func decodeState(b []byte) (hardState, error) {
	count, body, err := checkSide(b, "SLRSTATE")
	if err != nil {
		return hardState{}, err
	}
	if count != 1 || len(body) != stateSize {
		return hardState{}, fmt.Errorf("%d records in %d bytes", count, len(body))
	}
	return hardState{term: binary.LittleEndian.Uint64(body), vote: binary.LittleEndian.Uint64(body[8:]),
		commit: binary.LittleEndian.Uint64(body[16:])}, nil
}

// readSide reads a side file; ok is false when it does not exist. A file that exists but does
// not decode is corruption (ErrCorrupt): a replica never votes or acknowledges with state it
// cannot read.
func readSide[T any](fsys vfs.FS, dir, name string, decode func([]byte) (T, error)) (v T, ok bool, err error) {
	path := filepath.Join(dir, name)
	b, err := vfs.ReadFile(fsys, path, maxSideFile)
	if errors.Is(err, fs.ErrNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	v, err = decode(b)
	if err != nil {
		return v, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return v, true, nil
}

func writeSide(fsys vfs.FS, dir, name string, b []byte) error {
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, name), b, 0o600)
}
