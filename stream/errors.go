package stream

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/segment"
)

// Kind is the class of a stream error, one per Kinesis exception the API layer returns.
type Kind uint8

// The kinds, named after the Kinesis exceptions they become.
const (
	KindInvalidArgument Kind = iota + 1
	KindResourceNotFound
	KindResourceInUse
	KindLimitExceeded
	KindProvisionedThroughputExceeded
	KindExpiredIterator
	KindValidation
	// KindInternalFailure is a server-side failure (a disk error): PutRecords reports it
	// per record as InternalFailure, the API as a 500.
	KindInternalFailure
	// KindExpiredNextToken is a listing's NextToken used after it expired.
	KindExpiredNextToken
	// KindKMSNotFound is a KMS key the server's keyring does not hold.
	KindKMSNotFound
	// KindKMSAccessDenied is a keyring key that does not open a stream's data key.
	KindKMSAccessDenied
)

var kindNames = [...]string{
	KindInvalidArgument:               "InvalidArgumentException",
	KindResourceNotFound:              "ResourceNotFoundException",
	KindResourceInUse:                 "ResourceInUseException",
	KindLimitExceeded:                 "LimitExceededException",
	KindProvisionedThroughputExceeded: "ProvisionedThroughputExceededException",
	KindExpiredIterator:               "ExpiredIteratorException",
	KindValidation:                    "ValidationException",
	KindInternalFailure:               "InternalFailure",
	KindExpiredNextToken:              "ExpiredNextTokenException",
	KindKMSNotFound:                   "KMSNotFoundException",
	KindKMSAccessDenied:               "KMSAccessDeniedException",
}

// String returns the Kinesis exception name.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Error is an error of a Kind with a message for the client. Err, when set, is its cause (a
// storage failure under an InternalFailure): it is for errors.Is and As and for the server's
// log, never for a client.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Kind.String() + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Kind.String() + ": " + e.Msg
}

// Unwrap returns the cause, so that errors.Is(err, segment.ErrFailed) works above the engine.
func (e *Error) Unwrap() error { return e.Err }

// internalError is the InternalFailure of a failure of the storage below the engine. Damage
// found by a read (segment.ErrCorrupt) says so: it fails the reads that reach it, not the
// shard's writes, unless it is in the segment being written (docs/OPERATIONS.md).
func internalError(cause error) error {
	if errors.Is(cause, segment.ErrCorrupt) {
		return &Error{Kind: KindInternalFailure, Msg: "the shard's log holds damaged data", Err: cause}
	}
	return &Error{Kind: KindInternalFailure, Msg: "the shard's log failed", Err: cause}
}

// Is matches any *Error of the same Kind, so errors.Is(err, ErrInvalidArgument) tests the kind.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Kind == e.Kind && t.Msg == ""
}

// Sentinels for errors.Is: one per kind, with no message.
var (
	ErrInvalidArgument               = &Error{Kind: KindInvalidArgument}
	ErrResourceNotFound              = &Error{Kind: KindResourceNotFound}
	ErrResourceInUse                 = &Error{Kind: KindResourceInUse}
	ErrLimitExceeded                 = &Error{Kind: KindLimitExceeded}
	ErrProvisionedThroughputExceeded = &Error{Kind: KindProvisionedThroughputExceeded}
	ErrExpiredIterator               = &Error{Kind: KindExpiredIterator}
	ErrValidation                    = &Error{Kind: KindValidation}
	ErrExpiredNextToken              = &Error{Kind: KindExpiredNextToken}
	ErrKMSNotFound                   = &Error{Kind: KindKMSNotFound}
	ErrKMSAccessDenied               = &Error{Kind: KindKMSAccessDenied}
)

// errorf returns an *Error of kind k.
func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// invalid returns a validation error listing violations (built by package awsmsg).
func invalid(violations ...string) error {
	return &Error{Kind: KindValidation, Msg: awsmsg.Validation(violations...)}
}

// KindOf returns the kind of err, 0 if it is not a stream error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// NoSuchShard is the ResourceNotFound error of a shard a stream does not hold; shard is the
// id as the client wrote it (the protocol edge reports an id that does not parse with it).
func NoSuchShard(shard, stream, account string) error {
	return errorf(KindResourceNotFound, "%s", awsmsg.ShardNotFound(shard, stream, account))
}

// NotLeaderError is the cause of a record's error when its shard's log is replicated and
// another node leads it (a ShardLog that implements LeaderLog): the record was not appended
// here, nor charged to the shard's write limit. Leader is the leading node's Raft id, 0 when
// none is known (an election in progress). The record's error is an InternalFailure whose
// cause (errors.As) is this: the server forwards the record to Leader, or reports it failed,
// retryable, when no leader answers.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	return "stream: another node leads the shard (leader " + strconv.FormatUint(e.Leader, 10) + ")"
}

// ErrUnknownOutcome is wrapped by the error of a write that may or may not have been stored:
// a record forwarded to its shard's leader whose answer was lost. Putting such a record again
// could store it twice, so it is reported failed (retryable) instead, as Kinesis may report a
// record it stored.
var ErrUnknownOutcome = errors.New("stream: the write's outcome is unknown")

// notLeader is the per-record error of a record whose shard another node leads.
func notLeader(leader uint64) error {
	return &Error{Kind: KindInternalFailure, Msg: "the shard's leader is another node; retry", Err: &NotLeaderError{Leader: leader}}
}
