package stream

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Page tokens are the NextToken of ListShards and ListStreamConsumers. Like shard iterators
// they are opaque to clients and tamper-evident: a token carries the stream (name and
// incarnation), where the next page starts, the ListShards filter of the first call and when
// it was issued, signed with the iterator key (iterator.go); its first byte differs from an
// iterator's, so neither passes for the other. Kinesis tokens expire 300 seconds after they
// are issued; so do these. All integers little-endian:
//
//	ver         uint8, pageTokenVersion
//	kind        uint8, PageShards or PageConsumers
//	filter type uint8, ShardFilterType (PageShards)
//	pad         uint8, zero
//	after       uint32, the last shard id listed (PageShards) or the number of consumers listed
//	filter id   uint32, ShardFilter.After
//	filter at   int64, ShardFilter.At, Unix ms
//	issued      int64, Unix ms
//	stream gen  uint64, the stream's incarnation (streamMeta.Gen)
//	name len    uint16
//	name        the stream name
//	MAC         the first 16 bytes of HMAC-SHA256(key, every byte before it)
const (
	pageTokenVersion = 0x81
	pageFixed        = 38
	// PageTokenTTL is how long a NextToken stays valid after it is issued.
	PageTokenTTL = 300 * time.Second
)

// PageKind says which listing a page token continues.
type PageKind uint8

// The listings that page.
const (
	PageShards PageKind = iota + 1
	PageConsumers
)

// Page is where a listing continues: what a NextToken carries.
type Page struct {
	Kind   PageKind
	Stream string
	Gen    uint64
	After  uint32      // the last shard id listed (PageShards), or how many consumers were
	Filter ShardFilter // PageShards: the filter of the first call
	Issued time.Time
}

// NextToken returns the token that continues a listing of stream after after (a shard id,
// or a count of consumers), issued now.
func (e *Engine) NextToken(kind PageKind, stream string, after uint32, f ShardFilter) (string, error) {
	s, err := e.stream(stream)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, pageFixed+len(stream)+iterMACSize)
	b = append(b, pageTokenVersion, byte(kind), byte(f.Type), 0)
	b = binary.LittleEndian.AppendUint32(b, after)
	b = binary.LittleEndian.AppendUint32(b, uint32(f.After))
	b = binary.LittleEndian.AppendUint64(b, uint64(f.At.UnixMilli()))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.opts.Now().UnixMilli()))
	b = binary.LittleEndian.AppendUint64(b, s.meta.Load().Gen)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(stream)))
	b = append(b, stream...)
	b = append(b, e.key.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseNextToken checks a token of a listing of kind and returns where it continues. A token
// that is not one of ours, was altered, or continues another kind of listing is an
// InvalidArgument error; one issued more than PageTokenTTL ago an ExpiredNextToken error; one
// of a stream since deleted a ResourceNotFound error, or an InvalidArgument error if a stream
// of the same name was created since.
func (e *Engine) ParseNextToken(kind PageKind, token string) (Page, error) {
	invalid := errorf(KindInvalidArgument, "Invalid NextToken.")
	if len(token) > 512 {
		return Page{}, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < pageFixed+iterMACSize {
		return Page{}, invalid
	}
	body, sum := b[:len(b)-iterMACSize], b[len(b)-iterMACSize:]
	if !hmac.Equal(sum, e.key.mac(body)) || body[0] != pageTokenVersion || PageKind(body[1]) != kind {
		return Page{}, invalid
	}
	n := int(binary.LittleEndian.Uint16(body[36:]))
	if n > maxStreamName || pageFixed+n != len(body) || int(body[2]) >= len(shardFilterNames) {
		return Page{}, invalid
	}
	p := Page{
		Kind:  kind,
		After: binary.LittleEndian.Uint32(body[4:]),
		Filter: ShardFilter{Type: ShardFilterType(body[2]), After: ShardID(binary.LittleEndian.Uint32(body[8:])),
			At: time.UnixMilli(int64(binary.LittleEndian.Uint64(body[12:])))},
		Issued: time.UnixMilli(int64(binary.LittleEndian.Uint64(body[20:]))),
		Gen:    binary.LittleEndian.Uint64(body[28:]),
		Stream: string(body[pageFixed:]),
	}
	if now := e.opts.Now(); now.Sub(p.Issued) > PageTokenTTL {
		return Page{}, errorf(KindExpiredNextToken, "The timestamp on the NextToken has expired. It was issued at %s, %d seconds ago; a NextToken is valid for %d seconds.",
			p.Issued.UTC().Format(time.RFC1123), int64(now.Sub(p.Issued).Seconds()), int64(PageTokenTTL.Seconds()))
	}
	s, err := e.stream(p.Stream)
	if err != nil {
		return Page{}, err
	}
	if s.meta.Load().Gen != p.Gen {
		return Page{}, errorf(KindInvalidArgument, "The NextToken was issued for a stream %s that has since been deleted and created again.", p.Stream)
	}
	return p, nil
}
