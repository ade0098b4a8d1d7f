package client

import (
	"github.com/sluice-streams/sluice/kpl"
	"github.com/sluice-streams/sluice/shardmap"
)

// AllKeys is the range of every hash key: a Deaggregator given it filters nothing.
var AllKeys = shardmap.Range{Start: shardmap.Key{}, End: shardmap.MaxKey}

// Deaggregator turns records that hold KPL aggregated records into their user records, as
// the KCL does (its AggregatorUtil.deaggregate):
//
//   - a record whose data is a valid aggregated record (package kpl: magic, MD5 and
//     message) becomes its user records, in order, each with the record's shard, position
//     and arrival, its own partition key and data, Aggregated set and SubSeq its index;
//   - any other record, including one whose magic matches but whose digest or message does
//     not, is passed on as it is;
//   - if a user record's hash key (its explicit hash key, or the MD5 of its partition key) is
//     outside the shard's range — the aggregate was routed by a stale shard map, or it was
//     written to a parent before a split — none of that aggregate's user records are passed
//     on: the producer that wrote it retries them to the right shard, as the KPL does.
//
// Unlike the KCL, a user record with an explicit hash key that is not a decimal hash key
// makes its aggregate pass on as an ordinary record, rather than partly lost.
//
// A Deaggregator reuses its memory from one call to the next and is used by one goroutine.
type Deaggregator struct {
	dec kpl.Decoder
	out []Record
}

// Records returns the user records of recs for a shard whose hash-key range is rng (AllKeys
// when it is not known). The result aliases what recs alias and is reused by the next call.
// When no record is aggregated it returns recs itself.
func (d *Deaggregator) Records(recs []Record, rng shardmap.Range) []Record {
	first := -1
	for i := range recs {
		if kpl.HasMagic(recs[i].Data) {
			first = i
			break
		}
	}
	if first < 0 {
		return recs
	}
	clear(d.out)
	out := append(d.out[:0], recs[:first]...)
	for i := first; i < len(recs); i++ {
		r := &recs[i]
		users, err := d.dec.Decode(r.Data)
		if err != nil {
			out = append(out, *r)
			continue
		}
		keep, ok := inRange(users, rng)
		if !ok {
			out = append(out, *r)
			continue
		}
		if !keep {
			continue
		}
		for j, u := range users {
			ur := *r
			ur.Key, ur.Data, ur.ExplicitHashKey = u.PartitionKey, u.Data, u.ExplicitHashKey
			ur.Aggregated, ur.SubSeq = true, uint64(j)
			out = append(out, ur)
		}
	}
	d.out = out
	return out
}

// inRange reports whether every user record's hash key is in rng (keep), and false ok if an
// explicit hash key is not a hash key.
func inRange(users []kpl.UserRecord, rng shardmap.Range) (keep, ok bool) {
	keep = true
	for _, u := range users {
		var k shardmap.Key
		if u.ExplicitHashKey != nil {
			var err error
			if k, err = shardmap.ParseKey(string(u.ExplicitHashKey)); err != nil {
				return false, false
			}
		} else {
			k = shardmap.KeyOf(u.PartitionKey)
		}
		keep = keep && rng.Contains(k)
	}
	return keep, true
}
