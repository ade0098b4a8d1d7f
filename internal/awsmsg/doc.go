// Package awsmsg builds the messages of Kinesis errors that name a member and a constraint,
// or a resource that does not exist, exactly as Kinesis words them: the one place both the
// engine (package stream) and the API layer (package server) take them from, so that the
// same violation reads the same whichever layer finds it.
//
// A message is built from violations: Violation(value, member, constraint) is one "Value 'v'
// at 'member' failed to satisfy constraint: …", whose value comes from Int, Str, List, Null
// or Hidden and whose constraint comes from the constraint builders (ValueRange, Enum,
// Pattern, …); Validation joins one or more into "1 validation error detected: …". The
// not-found builders (StreamNotFound, ShardNotFound, ConsumerNotFound, …) give the
// ResourceNotFoundException messages.
//
// A value a client sent is echoed bounded: Str and List keep at most MaxEcho bytes of it, and
// the not-found builders at most MaxEchoName bytes of a name or ARN, cut on a character
// boundary, so that no client can make an error message as large as its request.
//
// What it does not own: the error types and kinds (stream.Error, server's API errors), which
// exception a message goes with, and deciding whether a value is valid. It imports only the
// standard library.
//
// Concurrency: every function is pure and safe for concurrent use. Durability: none, it
// holds no state.
package awsmsg
