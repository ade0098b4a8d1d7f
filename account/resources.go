package account

import (
	"encoding/json"
	"maps"
	"sort"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/stream"
)

// MaxPolicyBytes bounds a resource policy. The model sets no length on Policy; this is IAM's
// limit for a resource-based policy.
const MaxPolicyBytes = 20 << 10

// TagResource adds or replaces the tags of a stream (the engine's stream tags, as
// AddTagsToStream) or of a consumer.
func (a *Account) TagResource(arn string, tags map[string]string) error {
	return a.changeTags(arn, func(name string) error { return a.e.AddTags(name, tags) }, func(ct map[string]string) error {
		if err := stream.CheckTags(tags); err != nil {
			return err
		}
		maps.Copy(ct, tags)
		if len(ct) > stream.MaxTagsPerStream {
			return errorf(stream.KindLimitExceeded, "A resource can have at most %d tags; this would make %d.", stream.MaxTagsPerStream, len(ct))
		}
		return nil
	})
}

// UntagResource removes tags by key from a stream or a consumer; absent keys are ignored.
func (a *Account) UntagResource(arn string, keys []string) error {
	return a.changeTags(arn, func(name string) error { return a.e.RemoveTags(name, keys) }, func(ct map[string]string) error {
		for _, k := range keys {
			delete(ct, k)
		}
		return nil
	})
}

// changeTags changes the tags of the stream or consumer arn names: a stream's through the
// engine (ofStream), a consumer's here, by ofConsumer on a copy that replaces them unless it
// fails.
func (a *Account) changeTags(arn string, ofStream func(name string) error, ofConsumer func(map[string]string) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.resolve(arn)
	if err != nil {
		return err
	}
	if t.cons == nil {
		return ofStream(t.stream)
	}
	key := consumerKey(*t.cons)
	return a.update(t.stream, t.gen, func(s *streamSettings) error {
		ct := maps.Clone(s.ConsumerTags[key])
		if ct == nil {
			ct = map[string]string{}
		}
		if err := ofConsumer(ct); err != nil {
			return err
		}
		if s.ConsumerTags == nil {
			s.ConsumerTags = map[string]map[string]string{}
		}
		s.ConsumerTags[key] = ct
		if len(ct) == 0 {
			delete(s.ConsumerTags, key)
		}
		return nil
	})
}

// ResourceTags returns the tags of a stream or a consumer, sorted by key.
func (a *Account) ResourceTags(arn string) ([]stream.Tag, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.resolve(arn)
	if err != nil {
		return nil, err
	}
	if t.cons == nil {
		return a.e.Tags(t.stream)
	}
	s, err := a.settings(t.stream, t.gen)
	if err != nil {
		return nil, err
	}
	var ct map[string]string
	if s != nil {
		ct = s.ConsumerTags[consumerKey(*t.cons)]
	}
	out := make([]stream.Tag, 0, len(ct))
	for k, v := range ct {
		out = append(out, stream.Tag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// PutPolicy attaches a resource policy to a stream or a consumer, replacing any policy it
// had. The document must be one package iam parses (an InvalidArgumentException otherwise);
// ResourcePolicy returns it parsed once the change is durable.
func (a *Account) PutPolicy(arn, policy string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.resolve(arn)
	if err != nil {
		return err
	}
	if len(policy) > MaxPolicyBytes {
		return errorf(stream.KindInvalidArgument, "The policy is %d bytes; a resource policy can have at most %d.", len(policy), MaxPolicyBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(policy), &obj); err != nil || obj == nil {
		return errorf(stream.KindInvalidArgument, "The policy is not a valid JSON policy document.")
	}
	if err := checkPolicy(a.policyARN(t.stream, t.policyKey()), policy); err != nil {
		return err
	}
	return a.update(t.stream, t.gen, func(s *streamSettings) error {
		if s.Policies == nil {
			s.Policies = map[string]string{}
		}
		s.Policies[t.policyKey()] = policy
		return nil
	})
}

// Policy returns the resource policy of a stream or a consumer, "{}" if it has none.
func (a *Account) Policy(arn string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.resolve(arn)
	if err != nil {
		return "", err
	}
	s, err := a.settings(t.stream, t.gen)
	if err != nil {
		return "", err
	}
	if p, ok := s.policy(t.policyKey()); ok {
		return p, nil
	}
	return "{}", nil
}

// DeletePolicy removes the resource policy of a stream or a consumer; it is a
// ResourceNotFoundException if there is none.
func (a *Account) DeletePolicy(arn string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, err := a.resolve(arn)
	if err != nil {
		return err
	}
	return a.update(t.stream, t.gen, func(s *streamSettings) error {
		if _, ok := s.policy(t.policyKey()); !ok {
			return errorf(stream.KindResourceNotFound, "No resource policy found for resource %s.", awsmsg.Bound(arn, awsmsg.MaxEchoName))
		}
		delete(s.Policies, t.policyKey())
		return nil
	})
}

// policy returns the policy kept under key; s may be nil.
func (s *streamSettings) policy(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	p, ok := s.Policies[key]
	return p, ok
}
