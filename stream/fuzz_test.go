package stream

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
)

// FuzzOpenSealed opens arbitrary bytes as a sealed record's data (what a damaged or altered
// segment holds): it must fail cleanly, never panic, and open only the genuine record.
func FuzzOpenSealed(f *testing.F) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e, err := Open(Options{Dir: f.TempDir(), Now: c.Now, Limits: Limits{Off: true, Factor: 1},
		Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		f.Fatal(err)
	}
	if err := e.SetEncryption("s", "KMS", "alias/aws/kinesis"); err != nil {
		f.Fatal(err)
	}
	s := e.streams["s"]
	sl, err := s.sealerFor(s.meta.Load())
	if err != nil {
		f.Fatal(err)
	}
	plain, key := []byte("plaintext"), []byte("k")
	genuine := sl.seal(nil, key, plain)
	f.Add(genuine)
	f.Add(genuine[:SealOverhead-1])
	f.Add([]byte{})
	f.Add(append([]byte{9, 0, 0, 0}, genuine[4:]...)) // an unknown data key
	f.Fuzz(func(t *testing.T, data []byte) {
		r := segment.Record{Seq: 1, Flags: frame.FlagEncrypted | frame.FlagSealed, Key: key, Data: data}
		var keys openKeys
		got, err := s.open(nil, &r, &keys)
		if bytes.Equal(data, genuine) {
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("the genuine record: %q %v", got, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%x opened as %q", data, got)
		}
	})
}
