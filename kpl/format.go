package kpl

import (
	"crypto/md5"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// An aggregated record is the data of one Kinesis record (awslabs/amazon-kinesis-producer,
// aggregation-format.md):
//
//	+----------------+------------------------------------+-------------------------+
//	| magic, 4 bytes | AggregatedRecord, protobuf (proto2) | MD5 of the protobuf, 16 |
//	| F3 89 9A C2    |                                    |                         |
//	+----------------+------------------------------------+-------------------------+
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag {
//	  required string key   = 1;
//	  optional string value = 2;
//	}
//
// A user record's sub-sequence number is its index in records. An explicit hash key is a
// decimal string. The format has no version field: the magic names it.
const (
	// Magic starts every aggregated record.
	Magic = "\xF3\x89\x9A\xC2"
	// DigestLen is the length of the MD5 digest that ends it.
	DigestLen = md5.Size
	// Overhead is what the magic and the digest add to the protobuf message.
	Overhead = len(Magic) + DigestLen
)

// Field numbers of the messages above.
const (
	fieldKeyTable  protowire.Number = 1
	fieldHashTable protowire.Number = 2
	fieldRecords   protowire.Number = 3

	fieldKeyIndex  protowire.Number = 1
	fieldHashIndex protowire.Number = 2
	fieldData      protowire.Number = 3
	fieldTags      protowire.Number = 4

	fieldTagKey protowire.Number = 1
)

// ---- encode -------------------------------------------------------------------------------

// Builder collects user records and appends them as one aggregated record. Partition keys
// and explicit hash keys are stored once each, in tables, as the KPL does. The zero value is
// ready to use; Reset makes a Builder reusable without giving back its memory.
type Builder struct {
	keys    tableBuilder
	hashes  tableBuilder
	recs    []builtRecord
	recsLen int // bytes of the records field, tags and lengths included
}

type builtRecord struct {
	key, hash int // table indexes; hash -1: none
	data      []byte
}

type tableBuilder struct {
	entries []string
	index   map[string]int
	n       int // bytes of the table's fields
}

// find returns s's index, or -1 and the bytes adding it would take.
func (t *tableBuilder) find(s string) (int, int) {
	if i, ok := t.index[s]; ok {
		return i, 0
	}
	return -1, bytesFieldLen(len(s))
}

func (t *tableBuilder) add(s string) int {
	i, extra := t.find(s)
	if i >= 0 {
		return i
	}
	if t.index == nil {
		t.index = map[string]int{}
	}
	i = len(t.entries)
	t.entries = append(t.entries, s)
	t.index[s] = i
	t.n += extra
	return i
}

func (t *tableBuilder) reset() {
	clear(t.entries)
	t.entries = t.entries[:0]
	clear(t.index)
	t.n = 0
}

// bytesFieldLen is the length of a length-delimited field of n bytes with a one-byte tag
// (every field number here is below 16).
func bytesFieldLen(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// recordLen is the length of a Record message (without its own tag and length).
func recordLen(key, hash, dataLen int) int {
	n := 1 + protowire.SizeVarint(uint64(key)) + bytesFieldLen(dataLen)
	if hash >= 0 {
		n += 1 + protowire.SizeVarint(uint64(hash))
	}
	return n
}

// Len returns the number of user records added.
func (b *Builder) Len() int { return len(b.recs) }

// Size returns the length of the aggregated record AppendTo would append.
func (b *Builder) Size() int { return Overhead + b.keys.n + b.hashes.n + b.recsLen }

// SizeWith returns what Size would be after Add(key, hashKey, data) with len(data) = dataLen.
func (b *Builder) SizeWith(key, hashKey string, dataLen int) int {
	n := b.Size()
	ki, extra := b.keys.find(key)
	if ki < 0 {
		ki = len(b.keys.entries)
	}
	n += extra
	hi := -1
	if hashKey != "" {
		var extra int
		if hi, extra = b.hashes.find(hashKey); hi < 0 {
			hi = len(b.hashes.entries)
		}
		n += extra
	}
	return n + bytesFieldLen(recordLen(ki, hi, dataLen))
}

// Add appends a user record: its partition key, its explicit hash key in decimal ("" for
// none) and its data, which the Builder keeps by reference until Reset. It does not check
// the keys: the caller does, as it would for an ordinary record.
func (b *Builder) Add(key, hashKey string, data []byte) {
	r := builtRecord{key: b.keys.add(key), hash: -1, data: data}
	if hashKey != "" {
		r.hash = b.hashes.add(hashKey)
	}
	b.recs = append(b.recs, r)
	b.recsLen += bytesFieldLen(recordLen(r.key, r.hash, len(data)))
}

// Reset forgets the records added, keeping the memory for the next aggregate.
func (b *Builder) Reset() {
	b.keys.reset()
	b.hashes.reset()
	clear(b.recs)
	b.recs = b.recs[:0]
	b.recsLen = 0
}

// AppendTo appends the aggregated record of the records added to dst: Size() bytes.
func (b *Builder) AppendTo(dst []byte) []byte {
	dst = append(dst, Magic...)
	start := len(dst)
	for _, k := range b.keys.entries {
		dst = protowire.AppendTag(dst, fieldKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
	}
	for _, h := range b.hashes.entries {
		dst = protowire.AppendTag(dst, fieldHashTable, protowire.BytesType)
		dst = protowire.AppendString(dst, h)
	}
	for _, r := range b.recs {
		dst = protowire.AppendTag(dst, fieldRecords, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(recordLen(r.key, r.hash, len(r.data))))
		dst = protowire.AppendTag(dst, fieldKeyIndex, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(r.key))
		if r.hash >= 0 {
			dst = protowire.AppendTag(dst, fieldHashIndex, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(r.hash))
		}
		dst = protowire.AppendTag(dst, fieldData, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.data)
	}
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// ---- decode -------------------------------------------------------------------------------

// UserRecord is one user record of an aggregated record. Its slices alias the data given to
// Decode and stay valid as long as that data does.
type UserRecord struct {
	PartitionKey    []byte
	ExplicitHashKey []byte // decimal; nil when the record has none
	Data            []byte
}

// Decoder checks aggregated records and yields their user records. It keeps its tables
// between calls, so that decoding allocates nothing once they have grown to fit.
type Decoder struct {
	keys, hashes [][]byte
	recs         []UserRecord
}

// HasMagic reports whether data starts with Magic and is long enough to be an aggregated
// record: the cheap test before Decode.
func HasMagic(data []byte) bool {
	return len(data) > Overhead && string(data[:len(Magic)]) == Magic
}

// Decode checks that data is an aggregated record (its magic, its digest, then the whole
// message, every length against the bytes that remain) and returns its user records, in
// order: a record's index is its sub-sequence number. The slice is reused by the next
// Decode. On an error (ErrNotAggregated, ErrDigest or ErrMalformed) data is an ordinary
// record, as the KCL reads it.
//
// Unlike the KCL, which stops at a partition or explicit hash key index beyond its table
// and drops the user records after it, Decode reports such a record ErrMalformed, so that
// it is read whole as an ordinary record rather than partly lost.
func (d *Decoder) Decode(data []byte) ([]UserRecord, error) {
	if !HasMagic(data) {
		return nil, ErrNotAggregated
	}
	msg := data[len(Magic) : len(data)-DigestLen]
	if sum := md5.Sum(msg); string(sum[:]) != string(data[len(data)-DigestLen:]) {
		return nil, ErrDigest
	}
	clear(d.keys)
	clear(d.hashes)
	clear(d.recs)
	d.keys, d.hashes, d.recs = d.keys[:0], d.hashes[:0], d.recs[:0]
	// First the tables and the records' raw messages (a message may list its fields in any
	// order), then each record against the tables.
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, malformed("field tag", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= fieldKeyTable && num <= fieldRecords {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, malformed("field length", n)
			}
			b = b[n:]
			switch num {
			case fieldKeyTable:
				d.keys = append(d.keys, v)
			case fieldHashTable:
				d.hashes = append(d.hashes, v)
			default:
				d.recs = append(d.recs, UserRecord{Data: v})
			}
			continue
		}
		// Unknown fields, and known numbers with another wire type, are skipped as protobuf
		// parsers skip them.
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil, malformed("unknown field", n)
		}
		b = b[n:]
	}
	for i := range d.recs {
		if err := d.record(&d.recs[i]); err != nil {
			return nil, err
		}
	}
	return d.recs, nil
}

// record parses the Record message in r.Data into r.
func (d *Decoder) record(r *UserRecord) error {
	b := r.Data
	var key, hash uint64
	var hasKey, hasHash, hasData bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("record field tag", n)
		}
		b = b[n:]
		switch {
		case (num == fieldKeyIndex || num == fieldHashIndex) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("record index", n)
			}
			b = b[n:]
			if num == fieldKeyIndex {
				key, hasKey = v, true
			} else {
				hash, hasHash = v, true
			}
		case (num == fieldData || num == fieldTags) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("record field length", n)
			}
			b = b[n:]
			if num == fieldData {
				r.Data, hasData = v, true
			} else if err := checkTag(v); err != nil {
				return err
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return malformed("record unknown field", n)
			}
			b = b[n:]
		}
	}
	if !hasKey || !hasData {
		return fmt.Errorf("%w: record without a partition key index or data", ErrMalformed)
	}
	if key >= uint64(len(d.keys)) {
		return fmt.Errorf("%w: partition key index %d of a table of %d", ErrMalformed, key, len(d.keys))
	}
	r.PartitionKey = d.keys[key]
	r.ExplicitHashKey = nil
	if hasHash {
		if hash >= uint64(len(d.hashes)) {
			return fmt.Errorf("%w: explicit hash key index %d of a table of %d", ErrMalformed, hash, len(d.hashes))
		}
		r.ExplicitHashKey = d.hashes[hash]
	}
	return nil
}

// checkTag checks a Tag message: tags are not returned, but a message with a malformed one
// is not an aggregated record for a protobuf parser either.
func checkTag(b []byte) error {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("tag field tag", n)
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return malformed("tag field", n)
		}
		hasKey = hasKey || num == fieldTagKey && typ == protowire.BytesType
		b = b[n:]
	}
	if !hasKey {
		return fmt.Errorf("%w: tag without a key", ErrMalformed)
	}
	return nil
}

func malformed(what string, n int) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, protowire.ParseError(n))
}
