package iam

import (
	"errors"
	"fmt"
)

// ErrMalformed is the cause of every error Parse returns: the document is not a policy sluice
// can evaluate. The wrapping error names the element and the problem, in words fit for a
// client (InvalidArgumentException of PutResourcePolicy on the Kinesis API).
var ErrMalformed = errors.New("malformed policy document")

// malformed returns an error wrapping ErrMalformed; at names the element ("Statement[1].Effect").
func malformed(at, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if at != "" {
		msg = at + ": " + msg
	}
	return fmt.Errorf("%w: %s", ErrMalformed, msg)
}
