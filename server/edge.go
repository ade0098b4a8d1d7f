package server

import (
	"errors"
	"math"
	"strconv"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/server/wire"
)

// Input refused at the edge: checks on client values that the protocol decoders make before
// the engine sees a request, and the bound on how much of a client value an error message
// repeats. docs/API.md ("Input refused at the edge") lists the decisions.

const (
	// maxEcho is how many bytes of a client value an error message repeats; a longer value is
	// cut on a character boundary and followed by "...". AWS leaves an over-long value out of
	// its length messages ("Value at 'x' failed to satisfy constraint"); messages that quote
	// one (patterns, unknown names) quote at most this much of it here.
	maxEcho = awsmsg.MaxEcho
	// maxMessage bounds a whole error message. Every value the server itself quotes is bounded
	// by maxEcho; this also bounds the engine's messages and encoding/json's, which may quote
	// a value the edge does not check.
	maxMessage = 1024
	// hashKeyPattern is the model's pattern for ExplicitHashKey (and the other hash keys).
	hashKeyPattern = `0|([1-9]\d{0,38})`
	// seqNumPattern is the model's pattern for sequence numbers.
	seqNumPattern = `0|([1-9]\d{0,128})`
	// maxStreamName and maxARN are the model's length bounds of StreamName and StreamARN.
	maxStreamName = 128
	maxARN        = 2048
)

// echo returns v, or its first maxEcho bytes (whole characters) and "..." when it is longer.
func echo(v string) string { return awsmsg.Bound(v, maxEcho) }

// isDecimal reports whether s matches 0|([1-9]\d{0,max-1}): a decimal without a sign or a
// leading zero, of at most max digits.
func isDecimal(s string, max int) bool {
	if len(s) == 0 || len(s) > max || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// patternError is the ValidationException of a value that does not match its member's pattern.
func patternError(v, member, pattern string) error {
	return invalid(awsmsg.Violation(awsmsg.Str(v), member, awsmsg.Pattern(pattern)))
}

// checkStreamName checks a StreamName against the model (pattern [a-zA-Z0-9_.-]+, length 1 to
// 128) so that no longer or stranger name reaches the engine, whose messages repeat it.
func checkStreamName(name string) error {
	if len(name) > maxStreamName {
		return invalid(awsmsg.Violation(awsmsg.Str(name), "streamName", awsmsg.LengthAtMost(maxStreamName)))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return invalid(awsmsg.Violation(awsmsg.Str(name), "streamName", awsmsg.PatternLength("[a-zA-Z0-9_.-]+", 1, maxStreamName)))
		}
	}
	return nil
}

// maxEpochSeconds is the largest timestamp, in seconds either side of the epoch, whose count
// of milliseconds fits in an int64 (the engine and the messages about timestamps count
// milliseconds). It is math.MaxInt64/1000 - 1 because that is even, so a float64 holds it
// exactly; math.MaxInt64/1000 is odd and rounds up to a value whose milliseconds overflow.
const maxEpochSeconds = math.MaxInt64/1000 - 1

// parseEpochSeconds parses a timestamp in seconds, as AWS JSON 1.1 carries it (and cborToJSON
// writes tag 1), into milliseconds since the epoch. A value that is not a finite number is a
// SerializationException, and so is one that no count of milliseconds in an int64 can hold:
// it cannot be represented as the model's timestamp at all. A representable value in the
// future reaches the engine, whose message gives it in milliseconds as AWS does.
func parseEpochSeconds(text string) (int64, error) {
	f, err := strconv.ParseFloat(text, 64)
	overflow := errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0)
	switch {
	case overflow || err == nil && !math.IsInf(f, 0) && math.Abs(f) > maxEpochSeconds:
		return 0, apiError{code: wire.Serialization, msg: "Timestamp " + echo(text) + " is out of range: a timestamp is at most " +
			strconv.FormatInt(maxEpochSeconds, 10) + " seconds from the epoch"}
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return 0, apiError{code: wire.Serialization, msg: "Timestamp " + echo(text) + " is not a number of seconds since the epoch"}
	}
	sec, frac := math.Modf(f)
	return int64(sec)*1000 + int64(math.Round(frac*1e3)), nil
}
