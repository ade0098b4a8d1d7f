package wire

// leaders request (POST PathLeaders): the stream whose shard leaders the client asks for.
//
//	u16 nameLen | name
//
// leaders answer: the node leading each shard, as the answering node knows it; a shard with
// no known leader (an election) is absent, and a server that is not a cluster node answers
// none (send everything to it).
//
//	u32 count | count × (u32 shard | u16 addrLen | addr)
//
// addr is host:port of the leading node's API, on the scheme the client already uses.

// PathLeaders is the path of the leaders request.
const PathLeaders = "/sluice/v1/leaders"

// MaxAddrLen bounds an address in a leaders answer.
const MaxAddrLen = 255

// ShardLeader is one entry of a leaders answer. Addr aliases the answer.
type ShardLeader struct {
	Shard uint32
	Addr  []byte
}

// AppendLeadersRequest appends a leaders request for stream.
func AppendLeadersRequest(dst []byte, stream string) []byte { return appendName(dst, stream) }

// ReadLeadersRequest decodes a leaders request: the stream name, aliasing b.
func ReadLeadersRequest(b []byte) ([]byte, error) {
	v, n, err := name(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, ErrTrailing
	}
	return v, nil
}

// AppendLeadersHead begins a leaders answer of count entries, each then appended with
// AppendShardLeader.
func AppendLeadersHead(dst []byte, count int) []byte { return le.AppendUint32(dst, uint32(count)) }

// AppendShardLeader appends one entry of a leaders answer; addr must be 1…MaxAddrLen bytes.
func AppendShardLeader(dst []byte, shard uint32, addr string) []byte {
	dst = le.AppendUint32(dst, shard)
	dst = le.AppendUint16(dst, uint16(len(addr)))
	return append(dst, addr...)
}

// ReadLeaders decodes a leaders answer, calling fn for each entry in order.
func ReadLeaders(b []byte, fn func(ShardLeader)) error {
	if len(b) < 4 {
		return ErrShort
	}
	count := int(le.Uint32(b))
	b = b[4:]
	if count > len(b)/7 { // each entry takes at least 7 bytes
		return ErrShort
	}
	for range count {
		if len(b) < 6 {
			return ErrShort
		}
		shard, l := le.Uint32(b), int(le.Uint16(b[4:]))
		if l == 0 || l > MaxAddrLen {
			return ErrNameLen
		}
		if len(b) < 6+l {
			return ErrShort
		}
		fn(ShardLeader{Shard: shard, Addr: b[6 : 6+l]})
		b = b[6+l:]
	}
	if len(b) != 0 {
		return ErrTrailing
	}
	return nil
}
