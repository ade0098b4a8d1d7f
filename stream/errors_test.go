package stream

import (
	"errors"
	"fmt"
	"testing"
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
