package iam

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Request is what Decide judges: who asks to do what to which resource, and the context
// the condition keys read.
type Request struct {
	Principal Principal
	// Action is the IAM action, "kinesis:PutRecord" (Actions maps operations to actions).
	Action string
	// Resource is the ARN the action is checked on, or "*" for an action without a resource
	// (ListStreams). The account in the ARN decides whether the request is cross-account.
	Resource string

	// The context. A zero value is an absent key (IfExists and the …Not… operators say what
	// an absent key does), except SecureTransport, which every request has.
	SourceIP        netip.Addr // aws:SourceIp
	SecureTransport bool       // aws:SecureTransport: TLS
	Time            time.Time  // aws:CurrentTime and aws:EpochTime
}

// Outcome is the verdict of Decide.
type Outcome uint8

const (
	// ImplicitDeny: no statement allows the request (or, across accounts, only one side
	// does). The zero value, so a forgotten decision denies.
	ImplicitDeny Outcome = iota
	Allowed
	ExplicitDeny
)

func (o Outcome) String() string {
	switch o {
	case Allowed:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	}
	return "ImplicitDeny"
}

// Decision is Decide's verdict and what decided it, for the audit log and the error message.
type Decision struct {
	Outcome Outcome
	// Kind is the policy type of the deciding statement; for an implicit deny, the type that
	// has no allowing statement. Zero when the account's root user was allowed by default.
	Kind Kind
	// Policy is the name of the deciding policy, Sid its statement's Sid and Statement its
	// index in the policy; "", "" and -1 when no statement decided (an implicit deny, or the
	// root user). A cross-account allow names the resource policy's statement.
	Policy    string
	Sid       string
	Statement int
	// CrossAccount is whether the principal's account differs from the resource's.
	CrossAccount bool
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return d.Outcome == Allowed }

// Decide evaluates req against the principal's identity policies and the resource's
// policies, as AWS evaluates a request without SCPs, permissions boundaries or session
// policies:
//
//  1. A statement applies when its Action (NotAction), Resource (NotResource), Principal
//     (NotPrincipal, resource policies) and every condition match.
//  2. An applicable Deny in any policy decides: explicit deny (identity policies are looked
//     at first, so an identity Deny is the one reported when both deny).
//  3. Same account: an applicable Allow in either an identity or a resource policy allows.
//     A resource policy that names the principal only through its account (the account id
//     or its root ARN) delegates to the account's identity policies and does not by itself
//     allow an IAM user. The account's root user is allowed without an identity policy.
//  4. Across accounts: an Allow is needed on both sides, in the principal's identity
//     policies (the root user needs none) and in a resource policy that names the principal
//     or its account.
//  5. Otherwise: implicit deny.
//
// Identity policies do not bind the root user. Decide allocates nothing unless a condition
// compares a string to an IP, time or bool key.
func Decide(req Request, identity, resource []*Policy) Decision {
	resAcct := arnAccount(req.Resource)
	if resAcct == "" {
		resAcct = req.Principal.Account
	}
	cross := resAcct != req.Principal.Account
	root := req.Principal.IsRoot()

	idAllow, resAllow := noHit, noHit
	if !root {
		for _, p := range identity {
			for i := range p.stmts {
				st := &p.stmts[i]
				if !st.applies(&req) {
					continue
				}
				if st.effect == Deny {
					return hitDecision(ExplicitDeny, Identity, p, i, cross)
				}
				if idAllow.policy == nil {
					idAllow = hit{p, i}
				}
			}
		}
	}
	for _, p := range resource {
		for i := range p.stmts {
			st := &p.stmts[i]
			byAccount, ok := st.principalMatch(&req.Principal)
			if !ok || !st.applies(&req) {
				continue
			}
			if st.effect == Deny {
				return hitDecision(ExplicitDeny, Resource, p, i, cross)
			}
			if resAllow.policy == nil && (cross || root || !byAccount) {
				resAllow = hit{p, i}
			}
		}
	}

	switch {
	case !cross && root:
		return Decision{Outcome: Allowed, Statement: -1}
	case !cross && idAllow.policy != nil:
		return hitDecision(Allowed, Identity, idAllow.policy, idAllow.stmt, false)
	case !cross && resAllow.policy != nil:
		return hitDecision(Allowed, Resource, resAllow.policy, resAllow.stmt, false)
	case !cross:
		return Decision{Kind: Identity, Statement: -1}
	case !root && idAllow.policy == nil:
		return Decision{Kind: Identity, Statement: -1, CrossAccount: true}
	case resAllow.policy == nil:
		return Decision{Kind: Resource, Statement: -1, CrossAccount: true}
	}
	return hitDecision(Allowed, Resource, resAllow.policy, resAllow.stmt, true)
}

type hit struct {
	policy *Policy
	stmt   int
}

var noHit = hit{stmt: -1}

func hitDecision(o Outcome, k Kind, p *Policy, i int, cross bool) Decision {
	return Decision{Outcome: o, Kind: k, Policy: p.name, Sid: p.stmts[i].sid, Statement: i, CrossAccount: cross}
}

// principalMatch reports whether a resource policy statement's Principal (NotPrincipal)
// applies to p, and whether a Principal names p only through its account. Statements of
// identity policies apply to their user.
func (st *statement) principalMatch(p *Principal) (byAccount, ok bool) {
	if st.principal == nil {
		return false, true
	}
	ok, byAccount = st.principal.match(p)
	if st.notPrincipal {
		return false, !ok
	}
	return byAccount, ok
}

// applies reports whether the statement's action, resource and conditions match req.
func (st *statement) applies(req *Request) bool {
	if anyGlob(st.actions, req.Action, true) == st.notAction {
		return false
	}
	if matchPatterns(st.resources, st.resourceVars, req.Resource, req, false) == st.notResource {
		return false
	}
	for i := range st.conds {
		if !st.conds[i].eval(req) {
			return false
		}
	}
	return true
}

// Message is the AccessDeniedException message for a denied request, in AWS's words:
//
//	User: <principal ARN> is not authorized to perform: <action> on resource: <resource>
//	because no identity-based policy allows the <action> action
//
// or "… with an explicit deny in an identity-based policy" (resource-based alike). Within
// one account an explicit deny by an identity policy whose name is an ARN ends with
// ": <policy ARN>", as AWS's messages now do. Message of an allowing decision is "".
func (d Decision) Message(req Request) string {
	if d.Outcome == Allowed {
		return ""
	}
	var b strings.Builder
	b.WriteString("User: ")
	b.WriteString(req.Principal.ARN)
	b.WriteString(" is not authorized to perform: ")
	b.WriteString(req.Action)
	b.WriteString(" on resource: ")
	b.WriteString(req.Resource)
	kind := d.Kind
	if kind == 0 {
		kind = Identity
	}
	if d.Outcome == ExplicitDeny {
		b.WriteString(" with an explicit deny in a")
		if kind == Identity {
			b.WriteString("n")
		}
		b.WriteString(" " + kind.String() + " policy")
		if kind == Identity && !d.CrossAccount && strings.HasPrefix(d.Policy, "arn:") {
			b.WriteString(": " + d.Policy)
		}
		return b.String()
	}
	b.WriteString(" because no " + kind.String() + " policy allows the " + req.Action + " action")
	return b.String()
}

// has reports whether the request carries the key.
func (r *Request) has(k keyID) bool {
	switch k {
	case keySourceIP:
		return r.SourceIP.IsValid()
	case keySecureTransport:
		return true
	case keyCurrentTime, keyEpochTime:
		return !r.Time.IsZero()
	case keyPrincipalAccount:
		return r.Principal.Account != ""
	case keyPrincipalARN:
		return r.Principal.ARN != ""
	case keyUserName:
		return r.Principal.UserName != ""
	case keyUserID:
		return r.Principal.UserID != ""
	}
	return false
}

// text is the key's value as a string operator reads it. Only IP, time and bool keys
// allocate here.
func (r *Request) text(k keyID) string {
	switch k {
	case keySourceIP:
		return r.SourceIP.String()
	case keySecureTransport:
		return strconv.FormatBool(r.SecureTransport)
	case keyCurrentTime:
		return r.Time.UTC().Format(time.RFC3339)
	case keyEpochTime:
		return strconv.FormatInt(r.Time.Unix(), 10)
	case keyPrincipalAccount:
		return r.Principal.Account
	case keyPrincipalARN:
		return r.Principal.ARN
	case keyUserName:
		return r.Principal.UserName
	case keyUserID:
		return r.Principal.UserID
	}
	return ""
}

func (r *Request) number(k keyID) (float64, bool) {
	if k == keyEpochTime {
		return float64(r.Time.Unix()), true
	}
	f, err := strconv.ParseFloat(r.text(k), 64)
	return f, err == nil
}

func (r *Request) time(k keyID) (time.Time, bool) {
	if k == keyCurrentTime || k == keyEpochTime {
		return r.Time, true
	}
	return parseDate(r.text(k))
}

func (r *Request) boolean(k keyID) (bool, bool) {
	if k == keySecureTransport {
		return r.SecureTransport, true
	}
	return parseBool(r.text(k))
}

func (r *Request) addr(k keyID) (netip.Addr, bool) {
	if k == keySourceIP {
		return r.SourceIP.Unmap(), true
	}
	a, err := netip.ParseAddr(r.text(k))
	return a.Unmap(), err == nil
}
