package account

import (
	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/stream"
)

// The resource policies, parsed, for authorisation: PutPolicy parses a document before it
// keeps it, and every change (and the first load) publishes a new policyCache, so that the
// server finds a resource's policy for each request without a.mu and without parsing.

// policyCache maps a resource's ARN (arn:aws:kinesis:<region>:<account>:stream/<name>, and
// …/consumer/<name>:<created> for a consumer) to its parsed policy. Immutable once
// published in Account.policies.
type policyCache map[string]cachedPolicy

type cachedPolicy struct {
	stream string
	gen    uint64 // the incarnation of the stream the policy belongs to
	p      *iam.Policy
}

// publishPoliciesLocked parses the policies st holds and publishes them. A stored document
// that does not parse (kept by a version of sluice that checked only that it was a JSON
// object) is left out: it allows and denies nothing until it is replaced. The caller holds
// a.mu.
func (a *Account) publishPoliciesLocked(st *state) {
	c := policyCache{}
	for name, s := range st.Streams {
		for key, doc := range s.Policies {
			arn := a.policyARN(name, key)
			p, err := iam.Parse(iam.Resource, arn, []byte(doc))
			if err != nil {
				continue
			}
			c[arn] = cachedPolicy{stream: name, gen: s.Gen, p: p}
		}
	}
	a.policies.Store(&c)
}

// policyARN is the ARN of the resource a policy key names in the settings of stream name.
func (a *Account) policyARN(name, key string) string {
	arn := "arn:aws:kinesis:" + a.cfg.Region + ":" + a.cfg.Account + ":stream/" + name
	if ck, ok := consumerOfPolicyKey(key); ok {
		arn += "/consumer/" + ck
	}
	return arn
}

// ResourcePolicy returns the parsed resource policy of the stream or consumer arn names
// (its exact ARN, as policyCache keys it), nil if it has none. It takes no lock once the
// settings are loaded, and allocates nothing; a resource with a policy costs one look-up of
// the stream's incarnation in the engine, so that a stream created again under a deleted
// one's name does not inherit its policy. The policy is immutable: read it, keep it as long
// as needed.
func (a *Account) ResourcePolicy(arn string) (*iam.Policy, error) {
	c := a.policies.Load()
	if c == nil {
		a.mu.Lock()
		_, err := a.loadLocked() // publishes the policies
		a.mu.Unlock()
		if err != nil {
			return nil, err
		}
		c = a.policies.Load()
	}
	e, ok := (*c)[arn]
	if !ok {
		return nil, nil
	}
	if st, err := a.e.State(e.stream); err != nil || st.Gen != e.gen {
		return nil, nil
	}
	return e.p, nil
}

// checkPolicy parses a document PutPolicy is given for the resource arn: a document the
// evaluator cannot use is the InvalidArgumentException of PutResourcePolicy (the model has
// no MalformedPolicyDocumentException for Kinesis), with the parser's words
// ("malformed policy document: Statement[0].Effect: …").
func checkPolicy(arn, doc string) error {
	if _, err := iam.Parse(iam.Resource, arn, []byte(doc)); err != nil {
		return errorf(stream.KindInvalidArgument, "%s", err.Error())
	}
	return nil
}
