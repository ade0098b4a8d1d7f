package stream

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/segment"
)

func TestErrorKinds(t *testing.T) {
	sentinels := []*Error{ErrInvalidArgument, ErrResourceNotFound, ErrResourceInUse, ErrLimitExceeded,
		ErrProvisionedThroughputExceeded, ErrExpiredIterator, ErrValidation}
	for _, s := range sentinels {
		err := fmt.Errorf("wrapped: %w", errorf(s.Kind, "details %d", 1))
		for _, o := range sentinels {
			if got := errors.Is(err, o); got != (o.Kind == s.Kind) {
				t.Fatalf("errors.Is(%v, %v) = %v", err, o.Kind, got)
			}
		}
		if KindOf(err) != s.Kind {
			t.Fatalf("KindOf(%v) = %v", err, KindOf(err))
		}
		if name := s.Kind.String(); len(name) < 10 || name[len(name)-9:] != "Exception" {
			t.Fatalf("kind %d has name %q", s.Kind, s.Kind.String())
		}
	}
	if errors.Is(ErrInvalidArgument, errorf(KindInvalidArgument, "a specific one")) {
		t.Fatal("a sentinel matched a specific error")
	}
	if KindOf(errors.New("plain")) != 0 {
		t.Fatal("a plain error has a kind")
	}
}

// TestInternalErrorKeepsCause: a storage failure under the engine is an InternalFailure
// whose cause stays reachable through errors.Is.
func TestInternalErrorKeepsCause(t *testing.T) {
	ffs := faultfs.New()
	e, err := Open(Options{Dir: t.TempDir(), FS: ffs, Limits: Limits{Off: true}, Durability: segment.Durability{Mode: segment.Sync}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	ffs.FailSyncs(syscall.EIO)
	defer ffs.FailSyncs(nil)
	res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte("a")}})
	if err != nil {
		t.Fatal(err)
	}
	if KindOf(res[0].Err) != KindInternalFailure || !errors.Is(res[0].Err, syscall.EIO) {
		t.Fatalf("a failed sync: %v, want an InternalFailure wrapping EIO", res[0].Err)
	}
}
