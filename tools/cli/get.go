package cli

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/kpl"
	"github.com/sluice-streams/sluice/shardmap"
)

// GetInput says what Get reads: a shard, from a position given as a Kinesis iterator type.
type GetInput struct {
	Stream string
	// Shard is the shard id; "" takes the shard of SequenceNumber.
	Shard string
	// Type is the iterator type (ParseStart). "" means AT_SEQUENCE_NUMBER with a
	// SequenceNumber, AT_TIMESTAMP with a Timestamp, TRIM_HORIZON otherwise.
	Type string
	// SequenceNumber is the 56-digit position of AT_SEQUENCE_NUMBER and
	// AFTER_SEQUENCE_NUMBER.
	SequenceNumber string
	// Timestamp is the time of AT_TIMESTAMP (ParseTime).
	Timestamp string
	// Limit caps the records read, 1 to 10,000; 0 means 10,000.
	Limit int
	// Raw returns records as stored. By default a KPL aggregated record is replaced by its
	// user records, filtered by the shard's hash-key range, as the KCL reads them
	// (client.Deaggregator).
	Raw bool
}

// maxLimit is the most records one get returns.
const maxLimit = 10000

// GetResult is one read of a shard: its records and where the next read starts, or the
// shard's end and its children.
type GetResult struct {
	Shard        uint32
	Records      []client.Record // copies: they do not alias the answer; user records unless Raw
	Next         client.SeqNum   // the position to read next, AT_SEQUENCE_NUMBER; zero at the shard's end
	MillisBehind int64
	ShardEnd     bool
	Children     []ShardJSON // at the shard's end; only ShardId is set for a child not listed
}

// resolve turns in into a native get of one shard.
func (in *GetInput) resolve() (client.GetInput, error) {
	var g client.GetInput
	if in.Limit < 0 || in.Limit > maxLimit {
		return g, inputf("limit %d: want 1 to %d", in.Limit, maxLimit)
	}
	g.MaxRecords = in.Limit
	shardGiven := in.Shard != ""
	if shardGiven {
		var err error
		if g.Shard, err = ParseShard(in.Shard); err != nil {
			return g, err
		}
	}
	switch {
	case in.Type != "":
		var err error
		if g.Start, err = ParseStart(in.Type); err != nil {
			return g, err
		}
	case in.SequenceNumber != "":
		g.Start = client.AtSequenceNumber
	case in.Timestamp != "":
		g.Start = client.AtTimestamp
	default:
		g.Start = client.TrimHorizon
	}
	bySeq := g.Start == client.AtSequenceNumber || g.Start == client.AfterSequenceNumber
	switch {
	case bySeq && in.SequenceNumber == "":
		return g, inputf("%s needs a sequence number", g.Start)
	case !bySeq && in.SequenceNumber != "":
		return g, inputf("a sequence number goes with AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER, not %s", g.Start)
	case g.Start == client.AtTimestamp && in.Timestamp == "":
		return g, inputf("AT_TIMESTAMP needs a timestamp")
	case g.Start != client.AtTimestamp && in.Timestamp != "":
		return g, inputf("a timestamp goes with AT_TIMESTAMP, not %s", g.Start)
	}
	switch {
	case bySeq:
		seq, err := client.ParseSeqNum(in.SequenceNumber)
		if err != nil {
			return g, inputf("sequence number %q: want one of the 56-digit numbers sluice gives", in.SequenceNumber)
		}
		if shardGiven && seq.Shard != g.Shard {
			return g, inputf("sequence number %s is in %s, not %s", in.SequenceNumber,
				shardmap.ShardID(seq.Shard).String(), shardmap.ShardID(g.Shard).String())
		}
		g.Shard, g.Value = seq.Shard, seq.Position
		return g, nil
	case !shardGiven:
		return g, inputf("which shard? give a shard id")
	case g.Start == client.AtTimestamp:
		t, err := ParseTime(in.Timestamp)
		if err != nil {
			return g, err
		}
		if t.UnixMilli() < 0 {
			return g, inputf("time %q: before 1970", in.Timestamp)
		}
		g.Value = uint64(t.UnixMilli())
	}
	return g, nil
}

// Get reads records of one shard once, with a native get; throttled attempts are retried a
// few times with backoff. At the shard's end it lists the stream's shards to describe the
// children.
func Get(ctx context.Context, c *client.Client, in GetInput) (*GetResult, error) {
	g, err := in.resolve()
	if err != nil {
		return nil, err
	}
	var ans *client.GetOutput
	if err := retryThrottled(ctx, func() error {
		var err error
		ans, err = c.GetRecords(ctx, in.Stream, g)
		return err
	}); err != nil {
		return nil, err
	}
	defer ans.Release()
	recs := ans.Records
	if !in.Raw {
		var d client.Deaggregator
		recs = d.Records(recs, shardRange(ctx, c, in.Stream, g.Shard, recs))
	}
	res := &GetResult{Shard: g.Shard, MillisBehind: ans.MillisBehind, ShardEnd: ans.ShardEnd,
		Records: make([]client.Record, len(recs))}
	for i, r := range recs {
		r.Key, r.Data = bytes.Clone(r.Key), bytes.Clone(r.Data)
		r.ExplicitHashKey = bytes.Clone(r.ExplicitHashKey)
		res.Records[i] = r
	}
	if !ans.ShardEnd {
		res.Next = client.SeqNum{Shard: g.Shard, Position: ans.Next}
		return res, nil
	}
	if len(ans.Children) == 0 {
		return res, nil
	}
	listed := map[uint32]shardmap.Shard{}
	if shards, err := c.ListShards(ctx, in.Stream); err == nil {
		for _, s := range shards {
			listed[uint32(s.ID)] = s
		}
	}
	for _, id := range ans.Children {
		child := ShardJSON{ShardId: shardmap.ShardID(id).String()}
		if s, ok := listed[id]; ok {
			child = shardJSON(s)
		}
		res.Children = append(res.Children, child)
	}
	return res, nil
}

// shardRange returns the hash-key range of shard, to filter the user records of aggregated
// records as the KCL does. It asks the server only when recs hold an aggregated record, and
// filters nothing (client.AllKeys) when the shard is not listed.
func shardRange(ctx context.Context, c *client.Client, stream string, shard uint32, recs []client.Record) shardmap.Range {
	if !slices.ContainsFunc(recs, func(r client.Record) bool { return kpl.HasMagic(r.Data) }) {
		return client.AllKeys
	}
	shards, err := c.ListShards(ctx, stream)
	if err == nil {
		for _, s := range shards {
			if uint32(s.ID) == shard {
				return s.Range
			}
		}
	}
	return client.AllKeys
}

// shardJSON is the ListShards form of s, without its sequence range.
func shardJSON(s shardmap.Shard) ShardJSON {
	j := ShardJSON{ShardId: s.Name(), HashKeyRange: HashKeyRange{s.Range.Start.String(), s.Range.End.String()}}
	if s.HasParent() {
		j.ParentShardId = shardmap.ShardID(s.Parent).String()
	}
	if s.HasAdjacentParent() {
		j.AdjacentParentShardId = shardmap.ShardID(s.AdjacentParent).String()
	}
	return j
}

// getResultJSON is a GetResult in the shape of a GetRecords answer: NextSequenceNumber stands
// for NextShardIterator (absent at the shard's end), and ChildShards as Kinesis gives them.
type getResultJSON struct {
	Records            []RecordJSON
	NextSequenceNumber string `json:",omitempty"`
	MillisBehindLatest int64
	ChildShards        []childShardJSON `json:",omitempty"`
}

type childShardJSON struct {
	ShardId      string
	ParentShards []string
	HashKeyRange *HashKeyRange `json:",omitempty"`
}

// Write prints the records and, after them, lines starting with "# ": how many records and
// how far behind the shard's tip, then the next position to read (for --type
// AT_SEQUENCE_NUMBER) or the shard's end and its children. With out.JSON it prints one JSON
// object in the shape of a GetRecords answer.
func (r *GetResult) Write(out Output) error {
	if out.JSON {
		j := getResultJSON{Records: make([]RecordJSON, len(r.Records)), MillisBehindLatest: r.MillisBehind}
		for i := range r.Records {
			j.Records[i] = NewRecordJSON(&r.Records[i])
		}
		if !r.ShardEnd {
			j.NextSequenceNumber = r.Next.String()
		}
		for _, c := range r.Children {
			cj := childShardJSON{ShardId: c.ShardId, ParentShards: []string{}}
			for _, p := range []string{c.ParentShardId, c.AdjacentParentShardId} {
				if p != "" {
					cj.ParentShards = append(cj.ParentShards, p)
				}
			}
			if c.HashKeyRange.StartingHashKey != "" {
				cj.HashKeyRange = &c.HashKeyRange
			}
			j.ChildShards = append(j.ChildShards, cj)
		}
		return writeJSON(out.W, j)
	}
	var b []byte
	for i := range r.Records {
		b = AppendRecordLine(b, &r.Records[i])
	}
	b = fmt.Appendf(b, "# %s, %d ms behind latest\n", plural(len(r.Records), "record"), r.MillisBehind)
	if r.ShardEnd {
		ids := make([]string, len(r.Children))
		for i, c := range r.Children {
			ids[i] = c.ShardId
		}
		if len(ids) == 0 {
			ids = []string{"none listed"}
		}
		b = fmt.Appendf(b, "# shard end: %s is closed and read to its end; children: %s\n",
			shardmap.ShardID(r.Shard).String(), strings.Join(ids, " "))
	} else {
		b = fmt.Appendf(b, "# next: AT_SEQUENCE_NUMBER %s\n", r.Next)
	}
	_, err := out.W.Write(b)
	return err
}
