// Package wire is the codec of sluice's native protocol, version 1 (docs/PROTOCOL.md): the
// byte layouts of put, get and subscribe requests and answers, shared by the server and the
// Go client. It does no I/O and holds no state, so every decoder can be fuzzed alone.
//
// Encoders append to a caller's buffer; decoders take bytes, return values that alias them
// (valid as long as the bytes are) and never allocate, not even to reject. Every length is
// checked against the bytes present before it is used.
package wire

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Version is the protocol version, also in the paths.
const Version = 1

// Paths and content type of the native operations.
const (
	PathPut       = "/sluice/v1/put"
	PathGet       = "/sluice/v1/get"
	PathSubscribe = "/sluice/v1/subscribe"
	ContentType   = "application/vnd.sluice.v1"
)

// Headers of a get answer and of errors.
const (
	HeaderCount        = "X-Sluice-Count"
	HeaderNext         = "X-Sluice-Next"
	HeaderMillisBehind = "X-Sluice-Millis-Behind"
	HeaderShardEnd     = "X-Sluice-Shard-End"
	HeaderChildren     = "X-Sluice-Children"
	HeaderError        = "X-Sluice-Error"
	HeaderErrorCode    = "X-Sluice-Error-Code"
)

// Limits of the protocol, as PutRecords and GetRecords have them.
const (
	MaxPutRecords  = 500
	MaxGetRecords  = 10000
	MaxGetBytes    = 10 << 20
	MaxKeyLen      = 1024
	MaxNameLen     = 2048 // stream names (128) and consumer ARNs (2048)
	MaxMessageSize = MaxGetBytes + 64<<10
)

// Code is an error code: the Kinesis error names as numbers (docs/PROTOCOL.md, Errors).
type Code uint16

// The codes. New codes go at the end.
const (
	OK Code = iota
	InvalidArgument
	ResourceNotFound
	ResourceInUse
	LimitExceeded
	ProvisionedThroughputExceeded
	ExpiredIterator
	Validation
	Serialization
	AccessDenied
	UnknownOperation
	InternalFailure
	IncompleteSignature
	InvalidSignature
	UnrecognizedClient
	MissingAuthenticationToken
	ExpiredNextToken
	KMSNotFound
	KMSAccessDenied
	// ServiceUnavailable refuses a request the server cannot take now (it holds as many
	// request bytes, or executes as many requests, as it may); clients retry it. AWS lists it
	// among its common errors.
	ServiceUnavailable
	numCodes
)

var codeNames = [numCodes]string{
	"", "InvalidArgumentException", "ResourceNotFoundException", "ResourceInUseException",
	"LimitExceededException", "ProvisionedThroughputExceededException", "ExpiredIteratorException",
	"ValidationException", "SerializationException", "AccessDeniedException",
	"UnknownOperationException", "InternalFailure", "IncompleteSignatureException",
	"InvalidSignatureException", "UnrecognizedClientException", "MissingAuthenticationTokenException",
	"ExpiredNextTokenException", "KMSNotFoundException", "KMSAccessDeniedException",
	"ServiceUnavailable",
}

// Name returns the Kinesis error name of c; an unknown code is InternalFailure.
func (c Code) Name() string {
	if c >= numCodes {
		return codeNames[InternalFailure]
	}
	return codeNames[c]
}

// Status returns the HTTP status of an error of code c.
func (c Code) Status() int {
	switch {
	case c == OK:
		return 200
	case c == InternalFailure || c >= numCodes:
		return 500
	case c == ServiceUnavailable:
		return 503
	}
	return 400
}

// Unauthenticated reports whether c refuses a request for its credentials or signature
// (IncompleteSignature, InvalidSignature, UnrecognizedClient, MissingAuthenticationToken).
func (c Code) Unauthenticated() bool {
	return c >= IncompleteSignature && c <= MissingAuthenticationToken
}

// CodeOf returns the code of a Kinesis error name; unknown names are InternalFailure.
func CodeOf(name string) Code {
	for c, n := range codeNames {
		if n == name && c != 0 {
			return Code(c)
		}
	}
	return InternalFailure
}

// Start is where a get or a subscription starts.
type Start uint8

// The starting positions, with the Kinesis iterator types they stand for.
const (
	AtSequenceNumber Start = iota
	AfterSequenceNumber
	TrimHorizon
	Latest
	AtTimestamp
	numStarts
)

var startNames = [numStarts]string{"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"}

// String returns the Kinesis iterator type of s.
func (s Start) String() string {
	if s >= numStarts {
		return "Start(" + strconv.Itoa(int(s)) + ")"
	}
	return startNames[s]
}

// Decoding errors; static so that rejecting does not allocate.
var (
	ErrShort    = errors.New("wire: message shorter than its lengths say")
	ErrTrailing = errors.New("wire: bytes after the end of the message")
	ErrCount    = errors.New("wire: record count out of range")
	ErrKeyLen   = errors.New("wire: partition key length out of range")
	ErrNameLen  = errors.New("wire: name length out of range")
	ErrFlags    = errors.New("wire: unknown flags")
	ErrStart    = errors.New("wire: unknown starting position")
	ErrType     = errors.New("wire: unknown message type")
	ErrTooLarge = errors.New("wire: message too large")
	ErrReserved = errors.New("wire: reserved bytes are not zero")
)

var le = binary.LittleEndian

// appendName appends a u16-prefixed string.
func appendName(dst []byte, s string) []byte {
	dst = le.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// name decodes a u16-prefixed string of 1…MaxNameLen bytes.
func name(b []byte) (v []byte, n int, err error) {
	if len(b) < 2 {
		return nil, 0, ErrShort
	}
	l := int(le.Uint16(b))
	if l == 0 || l > MaxNameLen {
		return nil, 0, ErrNameLen
	}
	if len(b) < 2+l {
		return nil, 0, ErrShort
	}
	return b[2 : 2+l], 2 + l, nil
}
