package stream

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
)

// Enhanced fan-out consumers, as Kinesis defines them: at most 20 per stream, each named
// within its stream and identified by an ARN that carries its creation time, so that a
// consumer deregistered and registered again under the same name gets a new ARN.
const (
	MaxConsumersPerStream = 20
	ConsumerCreating      = "CREATING"
	ConsumerActive        = "ACTIVE"
	ConsumerDeleting      = "DELETING"
)

var consumerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// consumerMeta is a registered consumer, persisted in stream.json.
type consumerMeta struct {
	Name    string `json:"name"`
	Created int64  `json:"created"` // Unix seconds: the ARN's suffix
}

// Consumer describes a registered consumer.
type Consumer struct {
	Name      string
	ARN       string
	Status    string
	Created   time.Time
	StreamARN string
}

func (e *Engine) consumerARN(stream string, c consumerMeta) string {
	return e.ARN(stream) + "/consumer/" + c.Name + ":" + strconv.FormatInt(c.Created, 10)
}

func (e *Engine) consumer(stream string, c consumerMeta, status string) Consumer {
	return Consumer{Name: c.Name, ARN: e.consumerARN(stream, c), Status: status,
		Created: time.Unix(c.Created, 0), StreamARN: e.ARN(stream)}
}

// RegisterConsumer registers an enhanced fan-out consumer. The answer says CREATING, as
// Kinesis's does; the consumer is ACTIVE, and can subscribe, as soon as the call returns.
func (e *Engine) RegisterConsumer(stream, name string) (Consumer, error) {
	if !consumerNamePattern.MatchString(name) {
		return Consumer{}, invalid(awsmsg.Violation(awsmsg.Str(name), "consumerName", awsmsg.PatternLength("[a-zA-Z0-9_.-]+", 1, 128)))
	}
	s, err := e.stream(stream)
	if err != nil {
		return Consumer{}, err
	}
	var out Consumer
	err = s.retryChange(func() error {
		var err error
		out, err = e.registerConsumer(s, stream, name)
		return err
	})
	return out, err
}

// registerConsumer is one attempt of RegisterConsumer.
func (e *Engine) registerConsumer(s *Stream, stream, name string) (Consumer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return Consumer{}, e.notFound(stream)
	}
	cur := s.meta.Load()
	for _, c := range cur.Consumers {
		if c.Name == name {
			return Consumer{}, errorf(KindResourceInUse, "Consumer %s under stream %s already exists for account %s.", name, stream, e.opts.Account)
		}
	}
	if len(cur.Consumers) >= MaxConsumersPerStream {
		return Consumer{}, errorf(KindLimitExceeded, "Consumer limit of %d reached for stream %s.", MaxConsumersPerStream, stream)
	}
	c := consumerMeta{Name: name, Created: e.opts.Now().Unix()}
	next := cur.clone()
	next.Consumers = append(next.Consumers, c)
	if err := s.saveChangeLocked(next); err != nil {
		return Consumer{}, err
	}
	s.meta.Store(next)
	return e.consumer(stream, c, ConsumerCreating), nil
}

// DeregisterConsumer removes a consumer, found by stream and name or by ARN. Its
// subscriptions end.
func (e *Engine) DeregisterConsumer(stream, name, arn string) error {
	s, c, err := e.findConsumer(stream, name, arn)
	if err != nil {
		return err
	}
	return s.retryChange(func() error { return e.deregisterConsumer(s, c) })
}

// deregisterConsumer is one attempt of DeregisterConsumer: c leaves s's consumers if it is
// still there.
func (e *Engine) deregisterConsumer(s *Stream, c consumerMeta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.meta.Load()
	if s.deleted || !slices.Contains(cur.Consumers, c) {
		return nil // deleted, or deregistered meanwhile (by the stream's deletion or another call)
	}
	next := cur.clone()
	next.Consumers = next.Consumers[:0]
	for _, o := range cur.Consumers {
		if o != c {
			next.Consumers = append(next.Consumers, o)
		}
	}
	if err := s.saveChangeLocked(next); err != nil {
		return err
	}
	s.meta.Store(next)
	s.endSubscriptions(e.consumerARN(next.Name, c))
	s.metrics.dropConsumer(c.Name)
	return nil
}

// DescribeConsumer returns a consumer, found by stream and name or by ARN.
func (e *Engine) DescribeConsumer(stream, name, arn string) (Consumer, error) {
	s, c, err := e.findConsumer(stream, name, arn)
	if err != nil {
		return Consumer{}, err
	}
	return e.consumer(s.meta.Load().Name, c, ConsumerActive), nil
}

// ListConsumers returns a stream's consumers in creation order.
func (e *Engine) ListConsumers(stream string) ([]Consumer, error) {
	s, err := e.stream(stream)
	if err != nil {
		return nil, err
	}
	meta := s.meta.Load()
	out := make([]Consumer, 0, len(meta.Consumers))
	for _, c := range meta.Consumers {
		out = append(out, e.consumer(meta.Name, c, ConsumerActive))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// findConsumer resolves a consumer by ARN, or by stream and name.
func (e *Engine) findConsumer(stream, name, arn string) (*Stream, consumerMeta, error) {
	if arn != "" {
		prefix := fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/", e.opts.Region, e.opts.Account)
		rest, ok := strings.CutPrefix(arn, prefix)
		st, cons, ok2 := strings.Cut(rest, "/consumer/")
		if !ok || !ok2 {
			return nil, consumerMeta{}, errorf(KindResourceNotFound, "%s", awsmsg.ConsumerNotFound(arn))
		}
		stream = st
		cname, created, ok3 := strings.Cut(cons, ":")
		if !ok3 {
			return nil, consumerMeta{}, errorf(KindResourceNotFound, "%s", awsmsg.ConsumerNotFound(arn))
		}
		name = cname
		s, err := e.stream(stream)
		if err != nil {
			return nil, consumerMeta{}, errorf(KindResourceNotFound, "%s", awsmsg.ConsumerNotFound(arn))
		}
		for _, c := range s.meta.Load().Consumers {
			if c.Name == name && strconv.FormatInt(c.Created, 10) == created {
				return s, c, nil
			}
		}
		return nil, consumerMeta{}, errorf(KindResourceNotFound, "%s", awsmsg.ConsumerNotFound(arn))
	}
	s, err := e.stream(stream)
	if err != nil {
		return nil, consumerMeta{}, err
	}
	for _, c := range s.meta.Load().Consumers {
		if c.Name == name {
			return s, c, nil
		}
	}
	return nil, consumerMeta{}, errorf(KindResourceNotFound, "%s", awsmsg.ConsumerNameNotFound(name, stream, e.opts.Account))
}
