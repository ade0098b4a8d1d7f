package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// Output is where a verb prints, and how.
type Output struct {
	W    io.Writer // results: records, tables, positions
	Diag io.Writer // diagnostics: records that failed; nil discards them
	JSON bool      // JSON instead of text
}

func (o Output) diag() io.Writer {
	if o.Diag == nil {
		return io.Discard
	}
	return o.Diag
}

// Base64Marker starts data printed as base64 instead of text.
const Base64Marker = "base64:"

// timeLayout prints times in UTC to the millisecond, the precision of Kinesis arrival times.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendData appends data as text when it is printable (IsText), otherwise as Base64Marker
// and its standard base64.
func AppendData(dst, data []byte) []byte {
	if IsText(data) {
		return append(dst, data...)
	}
	dst = append(dst, Base64Marker...)
	return base64.StdEncoding.AppendEncode(dst, data)
}

// IsText reports whether data prints as text: non-empty valid UTF-8 without control
// characters (C0, DEL, C1: tabs and newlines too), not starting with Base64Marker.
func IsText(data []byte) bool {
	if len(data) == 0 || bytes.HasPrefix(data, []byte(Base64Marker)) {
		return false
	}
	for i := 0; i < len(data); {
		if c := data[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 || unicode.IsControl(r) {
			return false
		}
		i += n
	}
	return true
}

// appendKey appends a partition key as it is, or quoted as a Go string when it would not
// read as one field: empty, holding white space or control characters, or starting with a
// double quote.
func appendKey(dst, key []byte) []byte {
	plain := len(key) > 0 && key[0] != '"' && utf8.Valid(key)
	for _, r := range string(key) {
		if !plain || unicode.IsSpace(r) || unicode.IsControl(r) {
			plain = false
			break
		}
	}
	if plain {
		return append(dst, key...)
	}
	return strconv.AppendQuote(dst, string(key))
}

// AppendRecordLine appends the text line of a record, newline included: shard, sequence
// number, arrival time, partition key, data (see the package documentation).
func AppendRecordLine(dst []byte, r *client.Record) []byte {
	dst = shardmap.ShardID(r.Shard).Append(dst)
	dst = append(dst, ' ')
	dst = r.Seq().AppendKinesis(dst)
	if r.Aggregated {
		dst = append(dst, '/')
		dst = strconv.AppendUint(dst, r.SubSeq, 10)
	}
	dst = append(dst, ' ')
	dst = r.Arrival.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, ' ')
	dst = appendKey(dst, r.Key)
	dst = append(dst, ' ')
	dst = AppendData(dst, r.Data)
	return append(dst, '\n')
}

// RecordJSON is a record as GetRecords answers it, with its shard added. Data is base64 in
// JSON, as the Kinesis API has it.
type RecordJSON struct {
	ShardId                     string
	SequenceNumber              string
	ApproximateArrivalTimestamp string
	PartitionKey                string
	Data                        []byte
	EncryptionType              string `json:",omitempty"`
	// A user record of a KPL aggregated record: its index there, and its explicit hash key.
	SubSequenceNumber *uint64 `json:",omitempty"`
	ExplicitHashKey   string  `json:",omitempty"`
}

// flagEncrypted is the record flag of data written while server-side encryption was on.
const flagEncrypted = 1

// NewRecordJSON returns the JSON form of r. It copies nothing: Data aliases r.Data.
func NewRecordJSON(r *client.Record) RecordJSON {
	j := RecordJSON{ShardId: shardmap.ShardID(r.Shard).String(), SequenceNumber: r.SequenceNumber(),
		ApproximateArrivalTimestamp: r.Arrival.UTC().Format(timeLayout), PartitionKey: string(r.Key), Data: r.Data}
	if r.Flags&flagEncrypted != 0 {
		j.EncryptionType = "KMS"
	}
	if r.Aggregated {
		sub := r.SubSeq
		j.SubSequenceNumber, j.ExplicitHashKey = &sub, string(r.ExplicitHashKey)
	}
	return j
}

// appendJSONLine appends v as one line of JSON.
func appendJSONLine(dst []byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the package's own types come here, and they all encode.
		panic("BUG: cli: encoding JSON: " + err.Error())
	}
	return append(append(dst, b...), '\n')
}

// writeJSON writes v as indented JSON, as the AWS CLI prints an answer.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		panic("BUG: cli: encoding JSON: " + err.Error())
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ParseStart parses a Kinesis iterator type: TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER,
// AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP, in either case, with dashes or underscores.
func ParseStart(s string) (client.Start, error) {
	norm := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	for _, st := range []client.Start{client.TrimHorizon, client.Latest, client.AtSequenceNumber,
		client.AfterSequenceNumber, client.AtTimestamp} {
		if st.String() == norm {
			return st, nil
		}
	}
	return 0, inputf("iterator type %q: want TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP", s)
}

// ParseTime parses a time as RFC 3339 (2024-05-04T20:21:32Z, with fractions and offsets) or
// as Unix seconds with an optional fraction (1714854092.5), as the AWS CLI takes timestamps.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e11 {
		sec, frac := int64(f), f-float64(int64(f))
		return time.Unix(sec, int64(frac*1e9)).Round(time.Millisecond), nil
	}
	return time.Time{}, inputf("time %q: want RFC 3339 (2024-05-04T20:21:32Z) or Unix seconds", s)
}

// ParseShard parses a shard id: shardId-000000000001, or its index alone.
func ParseShard(s string) (uint32, error) {
	id, err := shardmap.ParseShardID(s)
	if err != nil {
		return 0, inputf("shard id %q: want shardId-NNNNNNNNNNNN or a shard index", s)
	}
	return uint32(id), nil
}
