package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// Description is what `sluice describe` shows: the stream as DescribeStream describes it,
// every shard included (HasMoreShards is always false), with DescribeStreamSummary's counts
// added, and the stream's enhanced fan-out consumers as ListStreamConsumers lists them.
type Description struct {
	StreamDescription StreamDescription
	Consumers         []ConsumerJSON
}

// StreamDescription is a stream as DescribeStream and DescribeStreamSummary describe it.
type StreamDescription struct {
	StreamName        string
	StreamARN         string
	StreamStatus      string
	StreamModeDetails struct{ StreamMode string }
	Shards            []ShardJSON
	HasMoreShards     bool
	// RetentionPeriodHours is how long records are kept.
	RetentionPeriodHours    int
	StreamCreationTimestamp Timestamp
	EnhancedMonitoring      []struct{ ShardLevelMetrics []string }
	EncryptionType          string
	KeyId                   string `json:",omitempty"`
	OpenShardCount          int
	ConsumerCount           int
	MaxRecordSizeInKiB      int
}

// ShardJSON is a shard as ListShards and DescribeStream answer it.
type ShardJSON struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          HashKeyRange
	SequenceNumberRange   struct {
		StartingSequenceNumber string
		EndingSequenceNumber   string `json:",omitempty"` // "" while the shard is open
	}
}

// HashKeyRange is a shard's range of hash keys, both ends included, in decimal.
type HashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

// ConsumerJSON is an enhanced fan-out consumer as ListStreamConsumers answers it.
type ConsumerJSON struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp Timestamp
}

// Timestamp is a time that the Kinesis API sends as Unix seconds and that is printed in
// RFC 3339, as the AWS CLI prints it.
type Timestamp struct{ time.Time }

// UnmarshalJSON reads Unix seconds, with a fraction, as a number or a string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(strings.Trim(string(b), `"`), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return fmt.Errorf("timestamp %.40s is not a number of seconds", b)
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()
	return nil
}

// MarshalJSON writes RFC 3339 in UTC.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, t.UTC().Format(time.RFC3339Nano)), nil
}

// maxPages bounds a listing's NextToken chain against a server that never ends it.
const maxPages = 1 << 16

// Describe reads a stream's summary, all its shards and, when it has any, its consumers.
func Describe(ctx context.Context, c *client.Client, stream string) (*Description, error) {
	var sum struct{ StreamDescriptionSummary StreamDescription }
	if err := c.CallKinesis(ctx, "DescribeStreamSummary", struct{ StreamName string }{stream}, &sum); err != nil {
		return nil, err
	}
	d := &Description{StreamDescription: sum.StreamDescriptionSummary, Consumers: []ConsumerJSON{}}
	sd := &d.StreamDescription
	sd.Shards = []ShardJSON{}
	type listIn struct {
		StreamName string `json:",omitempty"`
		NextToken  string `json:",omitempty"`
	}
	in := listIn{StreamName: stream}
	for page := 0; ; page++ {
		var out struct {
			Shards    []ShardJSON
			NextToken string
		}
		if err := c.CallKinesis(ctx, "ListShards", in, &out); err != nil {
			return nil, err
		}
		sd.Shards = append(sd.Shards, out.Shards...)
		if out.NextToken == "" || page == maxPages {
			break
		}
		in = listIn{NextToken: out.NextToken} // the token names the stream itself
	}
	if sd.ConsumerCount == 0 {
		return d, nil
	}
	type consumersIn struct {
		StreamARN string
		NextToken string `json:",omitempty"`
	}
	cin := consumersIn{StreamARN: sd.StreamARN}
	for page := 0; ; page++ {
		var out struct {
			Consumers []ConsumerJSON
			NextToken string
		}
		if err := c.CallKinesis(ctx, "ListStreamConsumers", cin, &out); err != nil {
			return nil, err
		}
		d.Consumers = append(d.Consumers, out.Consumers...)
		if out.NextToken == "" || page == maxPages {
			break
		}
		cin.NextToken = out.NextToken
	}
	return d, nil
}

// Write prints d as JSON, or as text: the stream's settings, then its shards in three
// tables (state, lineage and share of the hash key space; hash key ranges; sequence number
// ranges; each line starts with the shard id), then its consumers.
func (d *Description) Write(out Output) error {
	if out.JSON {
		return writeJSON(out.W, d)
	}
	sd := &d.StreamDescription
	var b strings.Builder
	fmt.Fprintf(&b, "Stream %s\n", sd.StreamName)
	open := 0
	for i := range sd.Shards {
		if sd.Shards[i].SequenceNumberRange.EndingSequenceNumber == "" {
			open++
		}
	}
	encryption := sd.EncryptionType
	if sd.KeyId != "" {
		encryption += " (key " + sd.KeyId + ")"
	}
	writeTable(&b, "ll", [][]string{
		{"ARN", sd.StreamARN},
		{"status", sd.StreamStatus},
		{"mode", sd.StreamModeDetails.StreamMode},
		{"created", sd.StreamCreationTimestamp.UTC().Format(time.RFC3339)},
		{"retention", plural(sd.RetentionPeriodHours, "hour")},
		{"shards", fmt.Sprintf("%d open, %d in all", open, len(sd.Shards))},
		{"max record size", fmt.Sprintf("%d KiB", sd.MaxRecordSizeInKiB)},
		{"encryption", encryption},
		{"consumers", strconv.Itoa(sd.ConsumerCount)},
	})

	lineage := [][]string{{"shard", "state", "parent", "adjacent parent", "key space"}}
	hashes := [][]string{{"shard", "starting hash key", "ending hash key"}}
	seqs := [][]string{{"shard", "starting sequence number", "ending sequence number"}}
	for i := range sd.Shards {
		s := &sd.Shards[i]
		state, end := "open", s.SequenceNumberRange.EndingSequenceNumber
		if end != "" {
			state = "closed"
		} else {
			end = "-"
		}
		lineage = append(lineage, []string{s.ShardId, state, orDash(s.ParentShardId), orDash(s.AdjacentParentShardId),
			keyShare(s.HashKeyRange)})
		hashes = append(hashes, []string{s.ShardId, s.HashKeyRange.StartingHashKey, s.HashKeyRange.EndingHashKey})
		seqs = append(seqs, []string{s.ShardId, s.SequenceNumberRange.StartingSequenceNumber, end})
	}
	b.WriteString("\nShards\n")
	writeTable(&b, "lllll", lineage)
	b.WriteString("\nHash key ranges\n")
	writeTable(&b, "lll", hashes)
	b.WriteString("\nSequence number ranges\n")
	writeTable(&b, "lll", seqs)
	if len(d.Consumers) > 0 {
		rows := [][]string{{"consumer", "status", "created", "ARN"}}
		for _, c := range d.Consumers {
			rows = append(rows, []string{c.ConsumerName, c.ConsumerStatus,
				c.ConsumerCreationTimestamp.UTC().Format(time.RFC3339), c.ConsumerARN})
		}
		b.WriteString("\nConsumers\n")
		writeTable(&b, "llll", rows)
	}
	_, err := io.WriteString(out.W, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// keyShare returns the share of the hash key space a range covers, in percent.
func keyShare(r HashKeyRange) string {
	start, err1 := shardmap.ParseKey(r.StartingHashKey)
	end, err2 := shardmap.ParseKey(r.EndingHashKey)
	if err1 != nil || err2 != nil || end.Less(start) {
		return "?"
	}
	f := func(k shardmap.Key) float64 { return float64(k.Hi)*0x1p64 + float64(k.Lo) }
	pct := (f(end) - f(start) + 1) / 0x1p128 * 100
	if pct < 0.01 {
		return strconv.FormatFloat(pct, 'g', 2, 64) + "%"
	}
	return strconv.FormatFloat(pct, 'f', 2, 64) + "%"
}

// writeTable prints rows indented by two spaces, in columns two spaces apart; align holds
// one letter per column, l or r.
func writeTable(w io.Writer, align string, rows [][]string) {
	width := make([]int, len(align))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var line []byte
	for _, r := range rows {
		line = append(line[:0], "  "...)
		for i, c := range r {
			pad := width[i] - utf8.RuneCountInString(c)
			if i > 0 {
				line = append(line, "  "...)
			}
			if align[i] == 'r' {
				line = appendSpaces(line, pad)
			}
			line = append(line, c...)
			if align[i] != 'r' {
				line = appendSpaces(line, pad)
			}
		}
		line = append(trimRightSpace(line), '\n')
		w.Write(line)
	}
}

func appendSpaces(b []byte, n int) []byte {
	for range n {
		b = append(b, ' ')
	}
	return b
}

func trimRightSpace(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}
