package cli

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/sluice-streams/sluice/client"
)

// ErrInput reports an input refused before any request: an unknown iterator type, a
// malformed sequence number, time or hash key, a partition key out of bounds, a shard that a
// sequence number does not belong to, a flag combination that means nothing. Wrapped with
// what was wrong.
var ErrInput = errors.New("invalid input")

// Message returns err as a command prints it: a refusal by the server as its Kinesis error
// name and message, without the client's prefix; a connection that could not be made as
// "cannot reach ENDPOINT" ("the server" when endpoint is empty); anything else as it is.
func Message(err error, endpoint string) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		if ce.Message == "" {
			return ce.Name
		}
		return ce.Name + ": " + strings.TrimSpace(ce.Message)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		if endpoint == "" {
			endpoint = "the server"
		}
		return "cannot reach " + endpoint + ": " + oe.Err.Error()
	}
	return err.Error()
}

// inputError is an error of the input; its text is only what was wrong, and errors.Is
// matches it with ErrInput.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInput }

// inputf returns an error that wraps ErrInput with a formatted message.
func inputf(format string, args ...any) error {
	return &inputError{fmt.Sprintf(format, args...)}
}
