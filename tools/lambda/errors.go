package lambda

import "errors"

// ErrMapping is wrapped by every error about the event source mapping itself: a key that
// does not exist, a value out of range, a setting this trigger does not implement.
var ErrMapping = errors.New("event source mapping")
