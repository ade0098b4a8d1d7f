package index

import (
	"encoding/binary"
	"sort"
	"sync/atomic"
)

// Table is an immutable, encoded run of entries sorted by sequence (and therefore by time
// and offset). Its bytes may live in a mapped index file or in a Builder; either way a Table
// stays valid as long as the owner of those bytes (File or Builder) is alive.
type Table struct{ b []byte }

// TableOf returns the table encoded in b, which must be a whole number of entries.
func TableOf(b []byte) Table { return Table{b: b[:len(b)/EntrySize*EntrySize]} }

// Len returns the number of entries.
func (t Table) Len() int { return len(t.b) / EntrySize }

// At returns entry i.
func (t Table) At(i int) Entry { return decodeEntry(t.b[i*EntrySize:]) }

// Bytes returns the encoded entries.
func (t Table) Bytes() []byte { return t.b }

func (t Table) seqAt(i int) uint64 { return binary.LittleEndian.Uint64(t.b[i*EntrySize:]) }
func (t Table) timeAt(i int) int64 { return int64(binary.LittleEndian.Uint64(t.b[i*EntrySize+8:])) }

// SeekSeq returns the entry with the largest sequence number at or below seq, from which a
// forward scan reaches the first frame with sequence number >= seq. ok is false when every
// entry is above seq (scan from the start of the segment).
func (t Table) SeekSeq(seq uint64) (e Entry, ok bool) {
	n := t.Len()
	// First entry with Seq > seq; the one before it is the answer.
	i := sort.Search(n, func(i int) bool { return t.seqAt(i) > seq })
	if i == 0 {
		return Entry{}, false
	}
	return t.At(i - 1), true
}

// SeekTime returns the last entry whose time is strictly before ts, from which a forward
// scan reaches the first frame that arrived at or after ts. ok is false when no entry is
// before ts (scan from the start of the segment).
func (t Table) SeekTime(ts int64) (e Entry, ok bool) {
	n := t.Len()
	i := sort.Search(n, func(i int) bool { return t.timeAt(i) >= ts })
	if i == 0 {
		return Entry{}, false
	}
	return t.At(i - 1), true
}

// Builder accumulates the entries of the active segment. Add is called by the one writer;
// Table may be called by any goroutine at any time.
//
// Its buffer is allocated once, for the most entries the segment can need, so that adding
// never moves bytes a reader may be looking at; the published count (an atomic) is the only
// field writer and readers share.
type Builder struct {
	interval int64
	buf      []byte       // fixed length; written by the writer beyond the published count only
	n        atomic.Int64 // published entries: written by the writer, read by readers
	next     int64        // writer only: the offset at or after which the next entry is due
}

// NewBuilder returns a builder that takes an entry every interval bytes of a segment whose
// frames span at most span bytes.
func NewBuilder(interval, span int64) *Builder {
	if interval <= 0 {
		panic("BUG: index interval must be positive")
	}
	max := span/interval + 2
	return &Builder{interval: interval, buf: make([]byte, max*EntrySize)}
}

// Interval returns the spacing of entries in bytes.
func (b *Builder) Interval() int64 { return b.interval }

// Observe is called by the writer for every frame it appends, in order. It records an entry
// when the frame starts at least one interval past the previous entry (and for the first
// frame). Called only by the writer.
func (b *Builder) Observe(e Entry) {
	n := b.n.Load()
	if n > 0 && e.Off < b.next {
		return
	}
	if (n+1)*EntrySize > int64(len(b.buf)) {
		return // full: the table stays correct, later lookups scan a little further
	}
	p := b.buf[n*EntrySize:]
	binary.LittleEndian.PutUint64(p[0:], e.Seq)
	binary.LittleEndian.PutUint64(p[8:], uint64(e.Time))
	binary.LittleEndian.PutUint64(p[16:], uint64(e.Off))
	b.next = e.Off + b.interval
	b.n.Store(n + 1)
}

// Table returns the entries published so far. It does not allocate.
func (b *Builder) Table() Table { return Table{b: b.buf[:b.n.Load()*EntrySize]} }

// Prefix returns the entries whose frames start before off.
func (t Table) Prefix(off int64) Table {
	n := t.Len()
	i := sort.Search(n, func(i int) bool {
		return int64(binary.LittleEndian.Uint64(t.b[i*EntrySize+16:])) >= off
	})
	return Table{b: t.b[:i*EntrySize]}
}
