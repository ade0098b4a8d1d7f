package awsmsg

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on what a message echoes of a client's input, in bytes.
const (
	// MaxEcho bounds a value that failed validation (Str, List).
	MaxEcho = 256
	// MaxEchoName bounds a name or ARN in a not-found message: the model's longest ARN, so
	// that any valid one is echoed whole.
	MaxEchoName = 2048
)

// Validation is the message of a ValidationException listing violations (built by
// Violation): "1 validation error detected: v", or "N validation errors detected: v1; v2".
func Validation(violations ...string) string {
	n := len(violations)
	head := strconv.Itoa(n) + " validation errors detected: "
	if n == 1 {
		head = "1 validation error detected: "
	}
	return head + strings.Join(violations, "; ")
}

// Violation is one member failing one constraint: "Value <value> at '<member>' failed to
// satisfy constraint: <constraint>". value comes from Int, Str, List, Null or Hidden.
func Violation(value, member, constraint string) string {
	if value == Hidden {
		return "Value at '" + member + "' failed to satisfy constraint: " + constraint
	}
	return "Value " + value + " at '" + member + "' failed to satisfy constraint: " + constraint
}

// The values of a violation that are not the client's own.
const (
	// Null is a member the request left out.
	Null = "null"
	// Hidden leaves the value out ("Value at 'm' …"), as Kinesis does for secrets and
	// for data and partition keys.
	Hidden = ""
)

// Int is an integer value, quoted.
func Int(v int) string { return "'" + strconv.Itoa(v) + "'" }

// Str is a string value, quoted, bounded to MaxEcho bytes.
func Str(s string) string { return "'" + Bound(s, MaxEcho) + "'" }

// List is a list of strings as Kinesis echoes one, "'[a, b]'", bounded to MaxEcho bytes.
func List(items []string) string {
	return "'[" + Bound(strings.Join(items, ", "), MaxEcho) + "]'"
}

// Bound returns s when it has at most n bytes; otherwise its longest prefix of at most n
// bytes that does not cut a character, followed by "..." to show the cut.
func Bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// NotNull is the constraint a missing member breaks.
const NotNull = "Member must not be null"

// ValueRange is "Member must have value less than or equal to hi and greater than or equal
// to lo".
func ValueRange(lo, hi int) string {
	return "Member must have value less than or equal to " + strconv.Itoa(hi) + " and greater than or equal to " + strconv.Itoa(lo)
}

// ValueAtLeast is "Member must have value greater than or equal to lo".
func ValueAtLeast(lo int) string {
	return "Member must have value greater than or equal to " + strconv.Itoa(lo)
}

// ValueBetween is "Member must have value between lo and hi".
func ValueBetween(lo, hi int) string {
	return "Member must have value between " + strconv.Itoa(lo) + " and " + strconv.Itoa(hi)
}

// LengthRange is "Member must have length less than or equal to hi and greater than or equal
// to lo".
func LengthRange(lo, hi int) string {
	return LengthAtMost(hi) + " and greater than or equal to " + strconv.Itoa(lo)
}

// LengthAtMost is "Member must have length less than or equal to hi".
func LengthAtMost(hi int) string {
	return "Member must have length less than or equal to " + strconv.Itoa(hi)
}

// LengthAtLeast is "Member must have length greater than or equal to lo".
func LengthAtLeast(lo int) string {
	return "Member must have length greater than or equal to " + strconv.Itoa(lo)
}

// Enum is "Member must satisfy enum value set: [a, b]".
func Enum(set ...string) string {
	return "Member must satisfy enum value set: [" + strings.Join(set, ", ") + "]"
}

// Pattern is "Member must satisfy regular expression pattern: p".
func Pattern(p string) string { return "Member must satisfy regular expression pattern: " + p }

// PatternLength is Pattern followed by " and length between lo and hi".
func PatternLength(p string, lo, hi int) string {
	return Pattern(p) + " and length between " + strconv.Itoa(lo) + " and " + strconv.Itoa(hi)
}

// Each is the constraint of a list whose members break constraints: "Member must satisfy
// constraint: [c1, c2]".
func Each(constraints ...string) string {
	return "Member must satisfy constraint: [" + strings.Join(constraints, ", ") + "]"
}

// StreamNotFound is "Stream <name> under account <account> not found.".
func StreamNotFound(name, account string) string {
	return "Stream " + Bound(name, MaxEchoName) + " under account " + account + " not found."
}

// ShardNotFound is "Shard <shard> in stream <stream> under account <account> does not
// exist".
func ShardNotFound(shard, stream, account string) string {
	return "Shard " + Bound(shard, MaxEchoName) + " in stream " + Bound(stream, MaxEchoName) + " under account " + account + " does not exist"
}

// ConsumerNotFound is "Consumer <arn> not found.".
func ConsumerNotFound(arn string) string {
	return "Consumer " + Bound(arn, MaxEchoName) + " not found."
}

// ConsumerNameNotFound is "Consumer <name> under stream <stream> not found for account
// <account>.".
func ConsumerNameNotFound(name, stream, account string) string {
	return "Consumer " + Bound(name, MaxEchoName) + " under stream " + Bound(stream, MaxEchoName) + " not found for account " + account + "."
}

// ResourceNotFound is "Resource <arn> not found.": an ARN of another region or account.
func ResourceNotFound(arn string) string {
	return "Resource " + Bound(arn, MaxEchoName) + " not found."
}

// StreamNotActive is the ResourceInUseException message for a stream that cannot change now:
// "Stream <name> under account <account> is <status>, not ACTIVE.".
func StreamNotActive(name, account, status string) string {
	return "Stream " + name + " under account " + account + " is " + status + ", not ACTIVE."
}
