package account

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/stream"
)

// ARN is the Amazon Resource Name of a stream, or of one of its enhanced fan-out consumers:
//
//	arn:<partition>:kinesis:<region>:<account>:stream/<stream>
//	arn:<partition>:kinesis:<region>:<account>:stream/<stream>/consumer/<consumer>:<created>
//
// where <created> is the consumer's creation time in Unix seconds, so that a consumer
// registered again under its name has another ARN.
type ARN struct {
	Partition string
	Region    string
	Account   string
	Stream    string
	Consumer  string // "" for the stream itself
	Created   int64  // the consumer's creation time, Unix s; with Consumer only
}

// String formats the ARN.
func (a ARN) String() string {
	s := "arn:" + a.Partition + ":kinesis:" + a.Region + ":" + a.Account + ":stream/" + a.Stream
	if a.Consumer != "" {
		s += "/consumer/" + a.Consumer + ":" + strconv.FormatInt(a.Created, 10)
	}
	return s
}

const maxResourceARNLen = 2048

// The model's constraints on a ResourceARN, and on a stream's or a consumer's name.
var (
	resourceARNPattern = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+$`)
	namePattern        = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
)

// ParseARN parses a ResourceARN. One that breaks the model's constraint is a
// ValidationException; one that names neither a stream nor a consumer is an
// InvalidArgumentException.
func ParseARN(s string) (ARN, error) {
	if len(s) < 1 || len(s) > maxResourceARNLen || !resourceARNPattern.MatchString(s) {
		return ARN{}, invalid(awsmsg.Violation(awsmsg.Str(s), "resourceARN",
			awsmsg.PatternLength(`arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+`, 1, maxResourceARNLen)))
	}
	notResource := errorf(stream.KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", s)
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 {
		return ARN{}, notResource
	}
	rest, ok := strings.CutPrefix(parts[5], "stream/")
	if !ok {
		return ARN{}, notResource
	}
	a := ARN{Partition: parts[1], Region: parts[3], Account: parts[4]}
	name, consumer, isConsumer := strings.Cut(rest, "/consumer/")
	if !namePattern.MatchString(name) || !isConsumer && strings.Contains(rest, "/") {
		return ARN{}, notResource
	}
	a.Stream = name
	if isConsumer {
		cname, created, ok := strings.Cut(consumer, ":")
		if !ok || !namePattern.MatchString(cname) || created == "" || strings.Trim(created, "0123456789") != "" {
			return ARN{}, notResource
		}
		t, err := strconv.ParseInt(created, 10, 64)
		if err != nil {
			return ARN{}, notResource
		}
		a.Consumer, a.Created = cname, t
	}
	return a, nil
}

// target is the stream or consumer a ResourceARN names, found.
type target struct {
	arn    string // as the client sent it
	stream string
	gen    uint64           // the stream's incarnation
	cons   *stream.Consumer // nil for the stream itself
}

// policyKey names the target in streamSettings.Policies: "stream", or "consumer/" and its
// consumerKey.
func (t target) policyKey() string {
	if t.cons == nil {
		return "stream"
	}
	return "consumer/" + consumerKey(*t.cons)
}

// consumerOfPolicyKey returns the consumerKey of a consumer's policy key.
func consumerOfPolicyKey(k string) (string, bool) { return strings.CutPrefix(k, "consumer/") }

// resolve finds the stream or consumer a ResourceARN names: the errors of ParseARN, and a
// ResourceNotFoundException for an ARN of another partition, region or account, or naming a
// stream or consumer that does not exist.
func (a *Account) resolve(arn string) (target, error) {
	p, err := ParseARN(arn)
	if err != nil {
		return target{}, err
	}
	if p.Partition != "aws" || p.Region != a.cfg.Region || p.Account != a.cfg.Account {
		return target{}, errorf(stream.KindResourceNotFound, "%s", awsmsg.ResourceNotFound(arn))
	}
	t := target{arn: arn, stream: p.Stream}
	if p.Consumer != "" {
		c, err := a.e.DescribeConsumer("", "", arn)
		if err != nil {
			return target{}, err
		}
		t.cons = &c
	}
	st, err := a.e.State(p.Stream)
	if err != nil {
		return target{}, err
	}
	t.gen = st.Gen
	return t, nil
}
