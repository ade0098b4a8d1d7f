package load

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"sync"
)

// The header a record's data starts with when it has at least headerLen bytes. It lets a
// consumer time the record from its put and tell this run's records from older ones.
//
//	0                 8                 16
//	+-----------------+-----------------+------------------------------
//	| sent            | run             | filler (len − 16 bytes)
//	+-----------------+-----------------+------------------------------
//
//	sent    int64, little-endian: Unix nanoseconds (this machine's clock) when the record
//	        was handed to the producer
//	run     uint64, little-endian: the run's id (Report.Run), random per run
//	filler  pseudo-random bytes, the same for every record of a run
//
// A record shorter than headerLen has no header: it is all filler. It is verified like
// any other (by its shard and sequence number), but not timed end to end; the report counts
// it as unmeasured. The format lives only in this package's runs: nothing else reads it.
const headerLen = 16

// putHeader writes the header into the first headerLen bytes of dst.
func putHeader(dst []byte, sent int64, run uint64) {
	binary.LittleEndian.PutUint64(dst[0:8], uint64(sent))
	binary.LittleEndian.PutUint64(dst[8:16], run)
}

// readHeader returns the send time of a record of run, and false when data is too short
// to carry a header or belongs to another run.
func readHeader(data []byte, run uint64) (sent int64, ok bool) {
	if len(data) < headerLen || binary.LittleEndian.Uint64(data[8:16]) != run {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(data[0:8])), true
}

// payload holds what every producer of a run shares: the filler and the partition keys.
// It is read-only once made, so any goroutine may read it.
type payload struct {
	run    uint64
	filler []byte // at least the largest record's length
	keys   []string
}

func newPayload(run, seed uint64, maxLen, keys int) *payload {
	r := rand.New(rand.NewPCG(seed, 0x6c6f6164)) // "load"
	p := &payload{run: run, filler: make([]byte, max(maxLen, headerLen)), keys: make([]string, keys)}
	for i := 0; i < len(p.filler); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(p.filler[i:], w[:])
	}
	for i := range p.keys {
		p.keys[i] = "key-" + strconv.Itoa(i)
	}
	return p
}

// appendData appends the data of a record of n bytes sent at sent to dst.
func (p *payload) appendData(dst []byte, n int, sent int64) []byte {
	if n < headerLen {
		return append(dst, p.filler[:n]...)
	}
	at := len(dst)
	dst = append(dst, p.filler[:n]...)
	putHeader(dst[at:], sent, p.run)
	return dst
}

// bufPool recycles the data buffers of the native producer: a buffer goes back once its
// record's outcome is known, when the producer no longer reads it.
var bufPool sync.Pool

func getBuf(n int) *[]byte {
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, max(n, 64))
	return &b
}

func putBuf(b *[]byte) { bufPool.Put(b) }
