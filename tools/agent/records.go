package agent

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"math/rand/v2"
	"regexp"
)

// splitRecord returns the length of the record at the start of b and the lines it holds,
// or 0 when b does not hold a whole record yet. Only whole lines (ending in '\n') make
// records. With a multi-line start pattern, a record is a line and the lines after it that
// the pattern does not match; it is whole when the next line it matches has come, or, with
// final, at the end of the last whole line of b.
func splitRecord(b []byte, start *regexp.Regexp, final bool) (n, lines int) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0, 0
	}
	if start == nil {
		return i + 1, 1
	}
	n, lines = i+1, 1
	for {
		j := bytes.IndexByte(b[n:], '\n')
		if j < 0 {
			if final {
				return n, lines
			}
			return 0, 0
		}
		if start.Match(b[n : n+j]) {
			return n, lines
		}
		n, lines = n+j+1, lines+1
	}
}

// recordMaker turns raw records into what a flow puts: processed, keyed, cut to size.
// It is used by one goroutine.
type recordMaker struct {
	procs         []Processor
	deterministic bool
	terminator    string
	scratch       [2][]byte
}

// make returns the key and data of raw, the data valid until the next call; false when a
// processor dropped the record.
func (m *recordMaker) make(raw []byte) (key string, data []byte, ok bool) {
	data = raw
	for i, p := range m.procs {
		out, keep := p.Process(m.scratch[i&1][:0], data)
		m.scratch[i&1] = out
		if !keep {
			return "", nil, false
		}
		data = out
	}
	var k [32]byte
	if m.deterministic {
		sum := md5.Sum(data)
		hex.Encode(k[:], sum[:])
	} else {
		var r [16]byte
		for i := range 2 {
			v := rand.Uint64()
			for j := range 8 {
				r[8*i+j] = byte(v >> (8 * j))
			}
		}
		hex.Encode(k[:], r[:])
	}
	key = string(k[:])
	if limit := MaxRecordBytes - len(key); len(data) > limit {
		cut := limit - len(m.terminator)
		if len(m.procs) > 0 {
			data = append(data[:cut], m.terminator...) // in the last processor's buffer
		} else {
			m.scratch[0] = append(append(m.scratch[0][:0], data[:cut]...), m.terminator...)
			data = m.scratch[0]
		}
	}
	return key, data, true
}
