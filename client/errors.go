package client

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/sluice-streams/sluice/server/wire"
)

// Error is an error the server answered with: a whole request refused (Status is its HTTP
// status), or one record of a put refused (Status 0). Code is the native protocol's code of
// Name (docs/PROTOCOL.md, Errors). Compare with the sentinels below through errors.Is, which
// matches on Code: errors.Is(err, client.ErrThrottled).
type Error struct {
	Code    wire.Code
	Name    string // the Kinesis error name, e.g. ResourceNotFoundException
	Message string
	Status  int    // the HTTP status of a refused request; 0 for a record's code in a put answer
	Op      string // what was asked: "put", "get", "subscribe" or a Kinesis operation
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sluice")
	if e.Op != "" {
		b.WriteString(" ")
		b.WriteString(e.Op)
	}
	b.WriteString(": ")
	b.WriteString(e.Name)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is reports whether target is an *Error with the same Code (a sentinel, typically).
// ErrAccessDenied also matches the refusals of credentials and signatures
// (IncompleteSignatureException, InvalidSignatureException, …).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.Code == e.Code || t.Code == wire.AccessDenied && e.Code.Unauthenticated())
}

func sentinel(c wire.Code) *Error { return &Error{Code: c, Name: c.Name()} }

// Sentinels for errors.Is, one per code of the protocol.
var (
	ErrInvalidArgument = sentinel(wire.InvalidArgument)
	ErrNotFound        = sentinel(wire.ResourceNotFound)
	ErrInUse           = sentinel(wire.ResourceInUse)
	ErrLimitExceeded   = sentinel(wire.LimitExceeded)
	ErrThrottled       = sentinel(wire.ProvisionedThroughputExceeded)
	ErrExpiredIterator = sentinel(wire.ExpiredIterator)
	ErrValidation      = sentinel(wire.Validation)
	ErrSerialization   = sentinel(wire.Serialization)
	ErrAccessDenied    = sentinel(wire.AccessDenied)
	ErrUnknownOp       = sentinel(wire.UnknownOperation)
	ErrInternal        = sentinel(wire.InternalFailure)
)

// Errors of the client itself.
var (
	// ErrClosed is the error of a call on a closed Client, Producer or Consumer, and the
	// outcome of records a Producer's Close gave up on.
	ErrClosed = errors.New("sluice: closed")
	// ErrBadAnswer means the server's answer did not decode: a protocol mismatch or damage.
	ErrBadAnswer = errors.New("sluice: malformed answer")
	// ErrRecordTooLarge is returned by Put for a record over the stream's maximum size.
	ErrRecordTooLarge = errors.New("sluice: record larger than the stream's maximum record size")
	// ErrBadKey is returned by Put for a partition key that is empty, over 256 characters or
	// not UTF-8.
	ErrBadKey = errors.New("sluice: partition key must be 1 to 256 characters of UTF-8")
	// ErrMisrouted ends a record of an aggregated record (ProducerConfig.Aggregate) whose
	// aggregates kept landing on another shard than the one it maps to: the producer's shard
	// map could not be refreshed. Those aggregates were appended, but a reader that filters
	// by the shard's hash-key range drops them.
	ErrMisrouted = errors.New("sluice: aggregated record appended to another shard than its records map to")
)

// codeOfName maps a Kinesis error name to its code. Names the protocol does not list get the
// closest code: authentication failures are AccessDenied, other client errors (status < 500)
// InvalidArgument, the rest InternalFailure.
func codeOfName(name string, status int) wire.Code {
	c := wire.CodeOf(name)
	if c != wire.InternalFailure || name == wire.InternalFailure.Name() || status >= 500 {
		return c
	}
	switch {
	case strings.Contains(name, "Signature"), strings.Contains(name, "Token"),
		strings.Contains(name, "UnrecognizedClient"), strings.Contains(name, "Authentication"):
		return wire.AccessDenied
	case name == "LimitExceeded" || name == "ThrottlingException":
		return wire.LimitExceeded
	}
	return wire.InvalidArgument
}

// answerError builds the *Error of a refused native request from its headers and body.
func answerError(op string, status int, name, code, body string) *Error {
	e := &Error{Name: name, Message: body, Status: status, Op: op}
	if n, err := strconv.Atoi(code); err == nil && n > 0 && n < 1<<16 {
		e.Code = wire.Code(n)
		if e.Name == "" {
			e.Name = e.Code.Name()
		}
	} else {
		e.Code = codeOfName(name, status)
	}
	if e.Name == "" {
		e.Name = wire.InternalFailure.Name()
		e.Code = wire.InternalFailure
	}
	return e
}

// retryable reports whether err is worth retrying as it is: throttling (of the data or the
// control plane), a server-side failure, or a network error. Anything else (a missing
// stream, invalid input, access) fails the same way again.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case wire.ProvisionedThroughputExceeded, wire.LimitExceeded, wire.InternalFailure:
			return true
		}
		return e.Status >= 500
	}
	return transient(err)
}

// transient reports whether err is a failure of the connection rather than an answer.
func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, errTransport)
}

// errTransport marks errors of the HTTP exchange itself (a closed connection, a broken
// response), which are always worth another attempt.
var errTransport = errors.New("sluice: transport")

// transportError wraps err so that retryable sees it as a connection failure.
type transportError struct{ err error }

func (t transportError) Error() string       { return "sluice: " + t.err.Error() }
func (t transportError) Unwrap() []error     { return []error{t.err, errTransport} }
func wrapTransport(err error) transportError { return transportError{err} }
