package agent

import "errors"

// ErrConfig is wrapped by every error about the configuration file: a key no Kinesis Agent
// knows, a missing or bad value, a setting this agent does not implement.
var ErrConfig = errors.New("agent configuration")

// ErrCheckpoint is wrapped by the errors of a checkpoint file that cannot be used: not this
// agent's, or of a version it does not know.
var ErrCheckpoint = errors.New("agent checkpoint")
