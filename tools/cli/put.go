package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// PutInput says where records go and how their data is given.
type PutInput struct {
	Stream string
	// Key is the partition key. PutLines takes "" as a random key per record.
	Key string
	// ExplicitHashKey, a decimal 128-bit number, routes the record instead of the MD5 of
	// Key (PutRecord only).
	ExplicitHashKey string
	// Base64 means the data (each line, for PutLines) is base64, decoded before it is sent:
	// the way to put binary data.
	Base64 bool
}

// PutResult is a record appended, as PutRecord answers it.
type PutResult struct {
	ShardId        string
	SequenceNumber string
}

func newPutResult(s client.SeqNum) PutResult {
	return PutResult{ShardId: shardmap.ShardID(s.Shard).String(), SequenceNumber: s.String()}
}

// appendPutLine appends the text line of an appended record: its shard and sequence number.
func appendPutLine(dst []byte, s client.SeqNum) []byte {
	dst = shardmap.ShardID(s.Shard).Append(dst)
	dst = append(dst, ' ')
	dst = s.AppendKinesis(dst)
	return append(dst, '\n')
}

// checkKey checks a partition key as Kinesis does: 1 to 256 characters of UTF-8.
func checkKey(key string) error {
	if key == "" || !utf8.ValidString(key) || utf8.RuneCountInString(key) > 256 {
		return inputf("partition key %q: want 1 to 256 characters of UTF-8", key)
	}
	return nil
}

// randomKey returns a partition key of 16 hex digits, spreading records over the shards.
func randomKey() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// PutRecord appends one record with a direct put request and prints its shard and sequence
// number. Throttled attempts are retried a few times with backoff, as the AWS CLI does.
func PutRecord(ctx context.Context, c *client.Client, in PutInput, data []byte, out Output) (client.SeqNum, error) {
	if err := checkKey(in.Key); err != nil {
		return client.SeqNum{}, err
	}
	e := client.PutEntry{Key: in.Key, Data: data}
	if in.ExplicitHashKey != "" {
		k, err := shardmap.ParseKey(in.ExplicitHashKey)
		if err != nil {
			return client.SeqNum{}, inputf("explicit hash key %q: want a decimal number from 0 to 2^128-1", in.ExplicitHashKey)
		}
		e.HashKey = &k
	}
	if in.Base64 {
		var err error
		if e.Data, err = base64.StdEncoding.AppendDecode(nil, data); err != nil {
			return client.SeqNum{}, inputf("data is not base64: %v", err)
		}
	}
	var seq client.SeqNum
	err := retryThrottled(ctx, func() error {
		res, err := c.PutRecords(ctx, in.Stream, []client.PutEntry{e})
		if err != nil {
			return err
		}
		seq = res[0].SeqNum
		return res[0].Err
	})
	if err != nil {
		return client.SeqNum{}, err
	}
	if out.JSON {
		return seq, writeJSON(out.W, newPutResult(seq))
	}
	_, err = out.W.Write(appendPutLine(nil, seq))
	return seq, err
}

// retryThrottled calls f until it succeeds, fails with an error other than throttling, or
// has been throttled 5 times, waiting 100 ms, 200 ms, … between attempts.
func retryThrottled(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt == 4 || !errors.Is(err, client.ErrThrottled) && !errors.Is(err, client.ErrLimitExceeded) {
			return err
		}
		t := time.NewTimer(100 * time.Millisecond << attempt)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// PutSummary counts what PutLines did.
type PutSummary struct {
	Appended int
	Failed   int
}

// pendingLine is a record put and waiting for its outcome, with its line number.
type pendingLine struct {
	line int
	fut  *client.Future
}

// PutLines appends one record per line of r (without its "\n" or "\r\n"; an empty line is
// a record with no data) through a Producer, and prints each appended record's shard and
// sequence number in the order of the lines, as soon as it is known. A record that fails is
// reported on out.Diag with its line number, and the others go on. Reading stops at the
// first line that cannot be a record (too long for the stream, not base64 with in.Base64);
// the lines before it are still appended. The error is nil only when every line was
// appended.
func PutLines(ctx context.Context, c *client.Client, in PutInput, r io.Reader, out Output) (PutSummary, error) {
	var sum PutSummary
	if in.ExplicitHashKey != "" {
		return sum, inputf("an explicit hash key routes one record: give the data as an argument")
	}
	if in.Key != "" {
		if err := checkKey(in.Key); err != nil {
			return sum, err
		}
	}
	s, err := c.DescribeStreamSummary(ctx, in.Stream)
	if err != nil {
		return sum, err
	}
	// A 1 ms linger rather than the producer's 5: the records of one key go one at a time
	// (the producer keeps them in order), each waiting out the linger, so a single key's
	// lines went at 300 a second with 5 ms and 1,100 with 1 ms (10,000 lines on loopback,
	// limits off); with random keys 100,000 lines took 0.3 s either way.
	p, err := c.NewProducer(ctx, in.Stream, client.ProducerConfig{Linger: time.Millisecond})
	if err != nil {
		return sum, err
	}

	// The printer waits for the outcomes in line order while the reader goes on putting;
	// the channel lets the reader run ahead up to the producer's own bound on memory.
	pending := make(chan pendingLine, 4096)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		w := bufio.NewWriter(out.W)
		var line []byte
		for pl := range pending {
			// Close gives every record an outcome, so this wait ends.
			seq, err := pl.fut.Wait(context.Background())
			if err != nil {
				sum.Failed++
				fmt.Fprintf(out.diag(), "line %d: %s\n", pl.line, Message(err, ""))
				if out.JSON {
					line = appendJSONLine(line[:0], putFailure(err))
					w.Write(line)
				}
			} else {
				sum.Appended++
				if out.JSON {
					line = appendJSONLine(line[:0], newPutResult(seq))
				} else {
					line = appendPutLine(line[:0], seq)
				}
				w.Write(line)
			}
			if len(pending) == 0 {
				w.Flush() // nothing more known yet: show what is
			}
		}
		w.Flush()
	}()

	maxData := max(s.MaxRecordKiB, 1) << 10
	maxLine := maxData + 2 // "\r\n"
	if in.Base64 {
		maxLine = base64.StdEncoding.EncodedLen(maxData) + 2
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var readErr error
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		var data []byte
		if in.Base64 {
			if data, err = base64.StdEncoding.AppendDecode(nil, text); err != nil {
				readErr = fmt.Errorf("line %d: not base64: %v", n, err)
				break
			}
		} else {
			data = bytes.Clone(text) // the producer keeps it until its outcome
		}
		key := in.Key
		if key == "" {
			key = randomKey()
		}
		fut, err := p.Put(ctx, key, data)
		if err != nil {
			if errors.Is(err, client.ErrRecordTooLarge) {
				err = fmt.Errorf("line %d: longer than the stream's largest record (%d KiB)", n, maxData>>10)
			}
			readErr = err
			break
		}
		pending <- pendingLine{n, fut}
	}
	if err := sc.Err(); err != nil && readErr == nil {
		if errors.Is(err, bufio.ErrTooLong) {
			readErr = fmt.Errorf("line %d: longer than the stream's largest record (%d KiB)", n+1, maxData>>10)
		} else {
			readErr = fmt.Errorf("reading line %d: %w", n+1, err)
		}
	}
	close(pending)
	closeErr := p.Close(ctx)
	<-printed
	var fe *client.FlushError
	switch {
	case readErr != nil:
		return sum, readErr
	case sum.Failed > 0:
		return sum, fmt.Errorf("%d of %d records failed", sum.Failed, sum.Failed+sum.Appended)
	case closeErr != nil && !errors.As(closeErr, &fe):
		return sum, closeErr
	}
	return sum, nil
}

// putFailure is a failed record as PutRecords answers it.
type putFailureJSON struct {
	ErrorCode    string
	ErrorMessage string
}

func putFailure(err error) putFailureJSON {
	var ce *client.Error
	if errors.As(err, &ce) {
		return putFailureJSON{ErrorCode: ce.Name, ErrorMessage: ce.Message}
	}
	return putFailureJSON{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
}
