package wire

// put request:
//
//	u16 nameLen | name | u32 count | count × record
//	record: u16 keyLen | u16 flags | u32 dataLen | [16-byte hash key if flags bit 0] | key | data
//
// put answer:
//
//	u32 count | u32 failed | count × (u32 shard | u16 code | u16 reserved | u64 position)

// FlagHashKey marks a put record that carries an explicit hash key.
const FlagHashKey = 1 << 0

const (
	putRecordHeader = 8  // keyLen, flags, dataLen
	putResultSize   = 16 // shard, code, reserved, position
)

// PutRecord is one record of a put request. Key and Data alias the decoded bytes.
type PutRecord struct {
	Key     []byte
	Data    []byte
	HashKey [16]byte // big-endian 128-bit; meaningful when HasHash
	HasHash bool
}

// BeginPut appends the head of a put request for stream with a zero count; FinishPut sets
// the count once the records are appended. It returns the offset of the count.
func BeginPut(dst []byte, stream string) ([]byte, int) {
	dst = appendName(dst, stream)
	off := len(dst)
	return le.AppendUint32(dst, 0), off
}

// AppendPutRecord appends one record to a put request begun by BeginPut.
func AppendPutRecord(dst []byte, r *PutRecord) []byte {
	dst = le.AppendUint16(dst, uint16(len(r.Key)))
	var flags uint16
	if r.HasHash {
		flags |= FlagHashKey
	}
	dst = le.AppendUint16(dst, flags)
	dst = le.AppendUint32(dst, uint32(len(r.Data)))
	if r.HasHash {
		dst = append(dst, r.HashKey[:]...)
	}
	dst = append(dst, r.Key...)
	return append(dst, r.Data...)
}

// PutRecordSize is the number of bytes AppendPutRecord adds for a record.
func PutRecordSize(keyLen, dataLen int, hasHash bool) int {
	n := putRecordHeader + keyLen + dataLen
	if hasHash {
		n += 16
	}
	return n
}

// FinishPut stores the record count of a put request at countOff (from BeginPut).
func FinishPut(req []byte, countOff, count int) { le.PutUint32(req[countOff:], uint32(count)) }

// PutReader decodes a put request record by record.
type PutReader struct {
	Stream []byte // the stream name, aliasing the request
	Count  int    // records announced
	rest   []byte
	read   int
}

// ReadPut decodes the head of a put request.
func ReadPut(b []byte) (PutReader, error) {
	stream, n, err := name(b)
	if err != nil {
		return PutReader{}, err
	}
	if len(b) < n+4 {
		return PutReader{}, ErrShort
	}
	count := int(le.Uint32(b[n:]))
	if count < 1 || count > MaxPutRecords {
		return PutReader{}, ErrCount
	}
	return PutReader{Stream: stream, Count: count, rest: b[n+4:]}, nil
}

// Next decodes the next record into r. It returns false with a nil error after the last
// record, once it has checked that nothing follows it.
func (p *PutReader) Next(r *PutRecord) (bool, error) {
	if p.read == p.Count {
		if len(p.rest) != 0 {
			return false, ErrTrailing
		}
		return false, nil
	}
	b := p.rest
	if len(b) < putRecordHeader {
		return false, ErrShort
	}
	klen := int(le.Uint16(b))
	flags := le.Uint16(b[2:])
	dlen := int(le.Uint32(b[4:]))
	if klen == 0 || klen > MaxKeyLen {
		return false, ErrKeyLen
	}
	if flags&^FlagHashKey != 0 {
		return false, ErrFlags
	}
	off := putRecordHeader
	r.HasHash = flags&FlagHashKey != 0
	if r.HasHash {
		if len(b) < off+16 {
			return false, ErrShort
		}
		copy(r.HashKey[:], b[off:off+16])
		off += 16
	}
	if dlen > len(b) || len(b)-off < klen+dlen { // dlen first: off+klen+dlen must not overflow
		return false, ErrShort
	}
	r.Key = b[off : off+klen : off+klen]
	r.Data = b[off+klen : off+klen+dlen : off+klen+dlen]
	p.rest = b[off+klen+dlen:]
	p.read++
	return true, nil
}

// PutResult is the outcome of one record of a put.
type PutResult struct {
	Shard    uint32
	Code     Code
	Position uint64
}

// AppendPutAnswerHead appends the head of a put answer; the results follow.
func AppendPutAnswerHead(dst []byte, count, failed int) []byte {
	dst = le.AppendUint32(dst, uint32(count))
	return le.AppendUint32(dst, uint32(failed))
}

// AppendPutResult appends one result of a put answer.
func AppendPutResult(dst []byte, r PutResult) []byte {
	dst = le.AppendUint32(dst, r.Shard)
	dst = le.AppendUint16(dst, uint16(r.Code))
	dst = le.AppendUint16(dst, 0)
	return le.AppendUint64(dst, r.Position)
}

// PutAnswer is a decoded put answer.
type PutAnswer struct {
	Count, Failed int
	results       []byte
}

// ReadPutAnswer decodes a put answer.
func ReadPutAnswer(b []byte) (PutAnswer, error) {
	if len(b) < 8 {
		return PutAnswer{}, ErrShort
	}
	count, failed := int(le.Uint32(b)), int(le.Uint32(b[4:]))
	if count > MaxPutRecords || failed > count {
		return PutAnswer{}, ErrCount
	}
	if len(b)-8 < count*putResultSize {
		return PutAnswer{}, ErrShort
	}
	if len(b)-8 > count*putResultSize {
		return PutAnswer{}, ErrTrailing
	}
	return PutAnswer{Count: count, Failed: failed, results: b[8:]}, nil
}

// Result returns the outcome of record i, 0 ≤ i < Count.
func (a PutAnswer) Result(i int) PutResult {
	r := a.results[i*putResultSize:]
	return PutResult{Shard: le.Uint32(r), Code: Code(le.Uint16(r[4:])), Position: le.Uint64(r[8:])}
}
