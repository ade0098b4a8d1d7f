package deliver

import "errors"

// ErrConfig is wrapped by every error about the delivery stream's configuration: a key that
// does not exist, a value out of range, a setting this delivery does not implement.
var ErrConfig = errors.New("delivery stream configuration")
