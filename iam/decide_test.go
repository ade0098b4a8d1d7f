package iam

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	acct      = "111122223333"
	otherAcct = "444455556666"
	aliceARN  = "arn:aws:iam::111122223333:user/alice"
	orders    = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
	consumer  = "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1767225600"
)

// pol wraps statements into a 2012-10-17 policy document.
func pol(stmts ...string) string {
	return `{"Version": "2012-10-17", "Statement": [` + strings.Join(stmts, ",") + `]}`
}

// allow is an identity statement allowing action on resource, with optional extra members.
func allow(action, resource string, extra ...string) string {
	return stmt("Allow", action, resource, extra...)
}

func deny(action, resource string, extra ...string) string {
	return stmt("Deny", action, resource, extra...)
}

func stmt(effect, action, resource string, extra ...string) string {
	s := `{"Effect": "` + effect + `", "Action": ` + action + `, "Resource": ` + resource
	for _, e := range extra {
		s += ", " + e
	}
	return s + "}"
}

// cond is a Condition member with one operator and key.
func cond(op, key, values string) string {
	return `"Condition": {"` + op + `": {"` + key + `": ` + values + `}}`
}

func baseRequest() Request {
	return Request{
		Principal:       Principal{Account: acct, ARN: aliceARN, UserName: "alice", UserID: "AIDAALICE"},
		Action:          "kinesis:PutRecord",
		Resource:        orders,
		SourceIP:        netip.MustParseAddr("203.0.113.7"),
		SecureTransport: true,
		Time:            time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
	}
}

func mustParse(t testing.TB, kind Kind, name, doc string) *Policy {
	t.Helper()
	p, err := Parse(kind, name, []byte(doc))
	if err != nil {
		t.Fatalf("Parse(%s): %v\n%s", name, err, doc)
	}
	return p
}

type decideCase struct {
	name     string
	identity []string
	resource []string
	req      func(*Request) // changes to baseRequest
	want     Outcome
	wantKind Kind   // checked when not zero
	wantSid  string // checked when not ""
}

var (
	put     = `"kinesis:PutRecord"`
	star    = `"*"`
	orderQ  = `"` + orders + `"`
	streams = `"arn:aws:kinesis:*:*:stream/*"`
)

func asBob(r *Request) {
	r.Principal = Principal{Account: acct, ARN: "arn:aws:iam::111122223333:user/bob", UserName: "bob", UserID: "AIDABOB"}
}

func fromOtherAccount(r *Request) {
	r.Principal = Principal{Account: otherAcct, ARN: "arn:aws:iam::444455556666:user/carol", UserName: "carol", UserID: "AIDACAROL"}
}

func asRoot(r *Request) {
	r.Principal = Principal{Account: acct, ARN: "arn:aws:iam::111122223333:root", UserID: acct}
}

func withIP(ip string) func(*Request) {
	return func(r *Request) {
		r.SourceIP = netip.Addr{}
		if ip != "" {
			r.SourceIP = netip.MustParseAddr(ip)
		}
	}
}
func plaintext(r *Request) { r.SecureTransport = false }

// principalStmt is a resource-policy statement with the given effect and Principal element.
func principalStmt(effect, principal string, extra ...string) string {
	return stmt(effect, put, orderQ, append([]string{`"Principal": ` + principal}, extra...)...)
}

var decideCases = []decideCase{
	// Actions.
	{name: "exact action", identity: []string{pol(allow(put, orderQ))}, want: Allowed, wantKind: Identity},
	{name: "action ignores case", identity: []string{pol(allow(`"KINESIS:putrecord"`, orderQ))}, want: Allowed},
	{name: "service wildcard", identity: []string{pol(allow(`"kinesis:*"`, orderQ))}, want: Allowed},
	{name: "prefix wildcard", identity: []string{pol(allow(`"kinesis:Put*"`, orderQ))}, want: Allowed},
	{name: "prefix wildcard of another action", identity: []string{pol(allow(`"kinesis:Get*"`, orderQ))}, want: ImplicitDeny, wantKind: Identity},
	{name: "star action", identity: []string{pol(allow(star, orderQ))}, want: Allowed},
	{name: "question mark is one character", identity: []string{pol(allow(`"kinesis:PutRecor?"`, orderQ))}, want: Allowed},
	{name: "question mark needs a character", identity: []string{pol(allow(`"kinesis:PutRecord?"`, orderQ))}, want: ImplicitDeny},
	{name: "action in a list", identity: []string{pol(allow(`["s3:GetObject", "kinesis:PutRecord"]`, orderQ))}, want: Allowed},
	{name: "another service's action", identity: []string{pol(allow(`"firehose:PutRecord"`, orderQ))}, want: ImplicitDeny},
	{name: "NotAction leaves the action in", identity: []string{pol(`{"Effect": "Allow", "NotAction": "kinesis:Delete*", "Resource": ` + orderQ + `}`)}, want: Allowed},
	{name: "NotAction takes the action out", identity: []string{pol(`{"Effect": "Allow", "NotAction": ["kinesis:Put*"], "Resource": "*"}`)}, want: ImplicitDeny},

	// Resources.
	{name: "resource wildcard over region and account", identity: []string{pol(allow(put, streams))}, want: Allowed},
	{name: "resource name prefix", identity: []string{pol(allow(put, `"arn:aws:kinesis:us-east-1:111122223333:stream/ord*"`))}, want: Allowed},
	{name: "another stream", identity: []string{pol(allow(put, `"arn:aws:kinesis:us-east-1:111122223333:stream/other"`))}, want: ImplicitDeny},
	{name: "wildcard spans colons", identity: []string{pol(allow(put, `"arn:aws:kinesis:*stream/orders"`))}, want: Allowed},
	{name: "stream/* covers its consumers", identity: []string{pol(allow(`"kinesis:SubscribeToShard"`, `"`+orders+`/*"`))},
		req: func(r *Request) { r.Action, r.Resource = "kinesis:SubscribeToShard", consumer }, want: Allowed},
	{name: "stream ARN does not cover a consumer", identity: []string{pol(allow(`"kinesis:SubscribeToShard"`, orderQ))},
		req: func(r *Request) { r.Action, r.Resource = "kinesis:SubscribeToShard", consumer }, want: ImplicitDeny},
	{name: "resources are case sensitive", identity: []string{pol(allow(put, `"arn:aws:kinesis:us-east-1:111122223333:stream/ORDERS"`))}, want: ImplicitDeny},
	{name: "question mark in resource", identity: []string{pol(allow(put, `"arn:aws:kinesis:us-east-1:111122223333:stream/order?"`))}, want: Allowed},
	{name: "NotResource leaves the stream in", identity: []string{pol(`{"Effect": "Allow", "Action": "kinesis:*", "NotResource": "arn:aws:kinesis:*:*:stream/secret"}`)}, want: Allowed},
	{name: "NotResource takes the stream out", identity: []string{pol(`{"Effect": "Allow", "Action": "kinesis:*", "NotResource": ["` + orders + `"]}`)}, want: ImplicitDeny},
	{name: "action without resource type needs star", identity: []string{pol(allow(`"kinesis:ListStreams"`, streams))},
		req: func(r *Request) { r.Action, r.Resource = "kinesis:ListStreams", "*" }, want: ImplicitDeny},
	{name: "action without resource type on star", identity: []string{pol(allow(`"kinesis:List*"`, star))},
		req: func(r *Request) { r.Action, r.Resource = "kinesis:ListStreams", "*" }, want: Allowed},

	// Deny wins.
	{name: "deny beside allow in one policy", identity: []string{pol(allow(`"kinesis:*"`, star), deny(put, orderQ, `"Sid": "NoPuts"`))},
		want: ExplicitDeny, wantKind: Identity, wantSid: "NoPuts"},
	{name: "deny in a second identity policy", identity: []string{pol(allow(star, star)), pol(deny(`"kinesis:Put*"`, streams, `"Sid": "Freeze"`))},
		want: ExplicitDeny, wantKind: Identity, wantSid: "Freeze"},
	{name: "resource policy deny beats identity allow", identity: []string{pol(allow(star, star))},
		resource: []string{pol(principalStmt("Deny", `{"AWS": "`+aliceARN+`"}`, `"Sid": "NotAlice"`))},
		want:     ExplicitDeny, wantKind: Resource, wantSid: "NotAlice"},
	{name: "deny whose condition fails does not apply", identity: []string{pol(allow(put, orderQ), deny(put, orderQ, cond("StringEquals", "aws:username", `"bob"`)))},
		want: Allowed},
	{name: "resource deny of everyone", identity: []string{pol(allow(star, star))}, resource: []string{pol(principalStmt("Deny", `"*"`))},
		want: ExplicitDeny, wantKind: Resource},

	// String operators.
	{name: "StringEquals true", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "aws:username", `"alice"`)))}, want: Allowed},
	{name: "StringEquals false", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "aws:username", `"bob"`)))}, want: ImplicitDeny},
	{name: "StringEquals is case sensitive", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "aws:username", `"Alice"`)))}, want: ImplicitDeny},
	{name: "StringNotEquals true", identity: []string{pol(allow(put, orderQ, cond("StringNotEquals", "aws:username", `"bob"`)))}, want: Allowed},
	{name: "StringNotEquals false", identity: []string{pol(allow(put, orderQ, cond("StringNotEquals", "aws:username", `["bob", "alice"]`)))}, want: ImplicitDeny},
	{name: "StringEqualsIgnoreCase true", identity: []string{pol(allow(put, orderQ, cond("StringEqualsIgnoreCase", "aws:username", `"ALICE"`)))}, want: Allowed},
	{name: "StringEqualsIgnoreCase false", identity: []string{pol(allow(put, orderQ, cond("StringEqualsIgnoreCase", "aws:username", `"carol"`)))}, want: ImplicitDeny},
	{name: "StringLike true", identity: []string{pol(allow(put, orderQ, cond("StringLike", "aws:PrincipalArn", `"arn:aws:iam::*:user/al*"`)))}, want: Allowed},
	{name: "StringLike false", identity: []string{pol(allow(put, orderQ, cond("StringLike", "aws:PrincipalArn", `"arn:aws:iam::*:user/b*"`)))}, want: ImplicitDeny},
	{name: "StringNotLike true", identity: []string{pol(allow(put, orderQ, cond("StringNotLike", "aws:userid", `"AIDAB*"`)))}, want: Allowed},
	{name: "StringNotLike false", identity: []string{pol(allow(put, orderQ, cond("StringNotLike", "aws:userid", `"AIDAA*"`)))}, want: ImplicitDeny},
	{name: "PrincipalAccount", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "aws:PrincipalAccount", `"`+acct+`"`)))}, want: Allowed},

	// ARN operators.
	{name: "ArnEquals true", identity: []string{pol(allow(put, orderQ, cond("ArnEquals", "aws:PrincipalArn", `"`+aliceARN+`"`)))}, want: Allowed},
	{name: "ArnEquals false", identity: []string{pol(allow(put, orderQ, cond("ArnEquals", "aws:PrincipalArn", `"arn:aws:iam::111122223333:user/bob"`)))}, want: ImplicitDeny},
	{name: "ArnLike true", identity: []string{pol(allow(put, orderQ, cond("ArnLike", "aws:PrincipalArn", `"arn:aws:iam::111122223333:user/*"`)))}, want: Allowed},
	{name: "ArnLike false", identity: []string{pol(allow(put, orderQ, cond("ArnLike", "aws:PrincipalArn", `"arn:aws:iam::*:role/*"`)))}, want: ImplicitDeny},
	{name: "ArnLike wildcard stays in its component", identity: []string{pol(allow(put, orderQ, cond("ArnLike", "aws:PrincipalArn", `"arn:aws:iam:*:user/alice"`)))}, want: ImplicitDeny},
	{name: "ArnNotEquals true", identity: []string{pol(allow(put, orderQ, cond("ArnNotEquals", "aws:PrincipalArn", `"arn:aws:iam::111122223333:user/bob"`)))}, want: Allowed},
	{name: "ArnNotLike false", identity: []string{pol(allow(put, orderQ, cond("ArnNotLike", "aws:PrincipalArn", `"arn:aws:iam::111122223333:user/a*"`)))}, want: ImplicitDeny},

	// Bool.
	{name: "Bool SecureTransport true", identity: []string{pol(allow(put, orderQ, cond("Bool", "aws:SecureTransport", `"true"`)))}, want: Allowed},
	{name: "Bool SecureTransport false", identity: []string{pol(allow(put, orderQ, cond("Bool", "aws:SecureTransport", `"true"`)))}, req: plaintext, want: ImplicitDeny},
	{name: "Bool takes a JSON boolean", identity: []string{pol(allow(put, orderQ, cond("Bool", "aws:SecureTransport", `false`)))}, req: plaintext, want: Allowed},
	{name: "deny plaintext", identity: []string{pol(allow(star, star), deny(star, star, cond("Bool", "aws:SecureTransport", `"false"`)))}, req: plaintext,
		want: ExplicitDeny},
	{name: "deny plaintext lets TLS through", identity: []string{pol(allow(star, star), deny(star, star, cond("Bool", "aws:SecureTransport", `"false"`)))},
		want: Allowed},

	// IP addresses.
	{name: "IpAddress v4 CIDR true", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"203.0.113.0/24"`)))}, want: Allowed},
	{name: "IpAddress v4 CIDR false", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"198.51.100.0/24"`)))}, want: ImplicitDeny},
	{name: "IpAddress one address", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"203.0.113.7"`)))}, want: Allowed},
	{name: "IpAddress v6 CIDR true", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `["198.51.100.0/24", "2001:db8::/32"]`)))},
		req: withIP("2001:db8:1::5"), want: Allowed},
	{name: "IpAddress v6 CIDR does not hold v4", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"2001:db8::/32"`)))}, want: ImplicitDeny},
	{name: "IpAddress v4-mapped source", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"203.0.113.0/24"`)))},
		req: withIP("::ffff:203.0.113.9"), want: Allowed},
	{name: "NotIpAddress deny from outside", identity: []string{pol(allow(star, star), deny(star, star, cond("NotIpAddress", "aws:SourceIp", `["10.0.0.0/8", "2001:db8::/32"]`)))},
		want: ExplicitDeny},
	{name: "NotIpAddress deny lets inside through", identity: []string{pol(allow(star, star), deny(star, star, cond("NotIpAddress", "aws:SourceIp", `"10.0.0.0/8"`)))},
		req: withIP("10.1.2.3"), want: Allowed},

	// Dates and numbers.
	{name: "DateGreaterThan true", identity: []string{pol(allow(put, orderQ, cond("DateGreaterThan", "aws:CurrentTime", `"2026-01-01T00:00:00Z"`)))}, want: Allowed},
	{name: "DateGreaterThan false", identity: []string{pol(allow(put, orderQ, cond("DateGreaterThan", "aws:CurrentTime", `"2027-01-01"`)))}, want: ImplicitDeny},
	{name: "DateLessThan true", identity: []string{pol(allow(put, orderQ, cond("DateLessThan", "aws:CurrentTime", `"2026-06-01T12:00:01Z"`)))}, want: Allowed},
	{name: "DateLessThan false at the instant", identity: []string{pol(allow(put, orderQ, cond("DateLessThan", "aws:CurrentTime", `"2026-06-01T12:00:00Z"`)))}, want: ImplicitDeny},
	{name: "DateLessThan epoch seconds", identity: []string{pol(allow(put, orderQ, cond("DateLessThan", "aws:EpochTime", `"1798761600"`)))}, want: Allowed},
	{name: "NumericLessThan EpochTime true", identity: []string{pol(allow(put, orderQ, cond("NumericLessThan", "aws:EpochTime", `1798761600`)))}, want: Allowed},
	{name: "NumericGreaterThan EpochTime false", identity: []string{pol(allow(put, orderQ, cond("NumericGreaterThan", "aws:EpochTime", `1798761600`)))}, want: ImplicitDeny},
	{name: "NumericEquals EpochTime", identity: []string{pol(allow(put, orderQ, cond("NumericEquals", "aws:EpochTime", `"1780315200"`)))}, want: Allowed},

	// Keys, values, absence.
	{name: "values are ORed", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "aws:username", `["bob", "alice"]`)))}, want: Allowed},
	{name: "keys are ANDed", identity: []string{pol(allow(put, orderQ, `"Condition": {"StringEquals": {"aws:username": "alice", "aws:userid": "AIDABOB"}}`))}, want: ImplicitDeny},
	{name: "operators are ANDed", identity: []string{pol(allow(put, orderQ, `"Condition": {"StringEquals": {"aws:username": "alice"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}, "Bool": {"aws:SecureTransport": "true"}}`))}, want: Allowed},
	{name: "absent key fails a positive operator", identity: []string{pol(allow(put, orderQ, cond("IpAddress", "aws:SourceIp", `"0.0.0.0/0"`)))}, req: withIP(""), want: ImplicitDeny},
	{name: "IfExists with the key absent", identity: []string{pol(allow(put, orderQ, cond("IpAddressIfExists", "aws:SourceIp", `"10.0.0.0/8"`)))}, req: withIP(""), want: Allowed},
	{name: "IfExists with the key present", identity: []string{pol(allow(put, orderQ, cond("IpAddressIfExists", "aws:SourceIp", `"10.0.0.0/8"`)))}, want: ImplicitDeny},
	{name: "StringEqualsIfExists with a user", identity: []string{pol(allow(put, orderQ, cond("StringEqualsIfExists", "aws:username", `"alice"`)))}, want: Allowed},
	{name: "absent key satisfies a negated operator", identity: []string{pol(allow(put, orderQ, cond("NotIpAddress", "aws:SourceIp", `"10.0.0.0/8"`)))}, req: withIP(""), want: Allowed},
	{name: "Null true with the key absent", identity: []string{pol(allow(put, orderQ, cond("Null", "aws:SourceIp", `"true"`)))}, req: withIP(""), want: Allowed},
	{name: "Null true with the key present", identity: []string{pol(allow(put, orderQ, cond("Null", "aws:SourceIp", `"true"`)))}, want: ImplicitDeny},
	{name: "unknown key is absent", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "kinesis:Unknown", `"x"`)))}, want: ImplicitDeny},
	{name: "key names ignore case", identity: []string{pol(allow(put, orderQ, cond("StringEquals", "AWS:UserName", `"alice"`)))}, want: Allowed},
	{name: "absent time fails a date operator", identity: []string{pol(allow(put, orderQ, cond("DateGreaterThan", "aws:CurrentTime", `"2020-01-01"`)))},
		req: func(r *Request) { r.Time = time.Time{} }, want: ImplicitDeny},
	{name: "ForAllValues with the key absent", identity: []string{pol(allow(put, orderQ, cond("ForAllValues:StringEquals", "aws:SourceIp", `"x"`)))}, req: withIP(""), want: Allowed},

	// Policy variables.
	{name: "variable in a resource", identity: []string{pol(allow(put, `"arn:aws:kinesis:*:*:stream/${aws:username}-*"`))},
		req: func(r *Request) { r.Resource = "arn:aws:kinesis:us-east-1:111122223333:stream/alice-events" }, want: Allowed},
	{name: "variable in a resource, another user's stream", identity: []string{pol(allow(put, `"arn:aws:kinesis:*:*:stream/${aws:username}-*"`))},
		req: func(r *Request) { r.Resource = "arn:aws:kinesis:us-east-1:111122223333:stream/bob-events" }, want: ImplicitDeny},
	{name: "variable in a deny", identity: []string{pol(allow(star, star), deny(put, `"arn:aws:kinesis:*:*:stream/${aws:username}-*"`))},
		req: func(r *Request) { r.Resource = "arn:aws:kinesis:us-east-1:111122223333:stream/alice-x" }, want: ExplicitDeny},
	{name: "variable is literal in 2008-10-17", identity: []string{`{"Version": "2008-10-17", "Statement": ` + allow(put, `"arn:aws:kinesis:*:*:stream/${aws:username}-*"`) + `}`},
		req: func(r *Request) { r.Resource = "arn:aws:kinesis:us-east-1:111122223333:stream/alice-events" }, want: ImplicitDeny},
	{name: "variable default", identity: []string{pol(allow(put, `"arn:aws:kinesis:*:*:stream/${kinesis:Nothing, 'orders'}"`))}, want: Allowed},
	{name: "variable without value or default", identity: []string{pol(allow(put, `"arn:aws:kinesis:*:*:stream/${kinesis:Nothing}*"`))}, want: ImplicitDeny},
	{name: "variable in a condition value", identity: []string{pol(allow(put, orderQ, cond("StringLike", "aws:PrincipalArn", `"arn:aws:iam::*:user/${aws:username}"`)))}, want: Allowed},
	{name: "variable in a condition value, another user", identity: []string{pol(allow(put, orderQ, cond("ArnEquals", "aws:PrincipalArn", `"arn:aws:iam::111122223333:user/${aws:userid}"`)))}, want: ImplicitDeny},

	// Resource policies within one account.
	{name: "resource policy Principal star, same account", resource: []string{pol(principalStmt("Allow", `"*"`, `"Sid": "Public"`))},
		want: Allowed, wantKind: Resource, wantSid: "Public"},
	{name: "resource policy naming the user", resource: []string{pol(principalStmt("Allow", `{"AWS": ["arn:aws:iam::111122223333:user/bob", "`+aliceARN+`"]}`))},
		want: Allowed, wantKind: Resource},
	{name: "resource policy naming the account delegates to identity", resource: []string{pol(principalStmt("Allow", `{"AWS": "arn:aws:iam::111122223333:root"}`))},
		want: ImplicitDeny, wantKind: Identity},
	{name: "resource policy naming another user", resource: []string{pol(principalStmt("Allow", `{"AWS": "arn:aws:iam::111122223333:user/bob"}`))},
		want: ImplicitDeny},
	{name: "resource policy with a condition", resource: []string{pol(principalStmt("Allow", `"*"`, cond("IpAddress", "aws:SourceIp", `"10.0.0.0/8"`)))},
		want: ImplicitDeny},
	{name: "NotPrincipal deny spares the named user", identity: []string{pol(allow(star, star))},
		resource: []string{pol(`{"Effect": "Deny", "NotPrincipal": {"AWS": "` + aliceARN + `"}, "Action": "kinesis:*", "Resource": "*"}`)}, want: Allowed},
	{name: "NotPrincipal deny hits others", identity: []string{pol(allow(star, star))},
		resource: []string{pol(`{"Effect": "Deny", "NotPrincipal": {"AWS": "` + aliceARN + `"}, "Action": "kinesis:*", "Resource": "*"}`)}, req: asBob,
		want: ExplicitDeny, wantKind: Resource},
	{name: "root user needs no policy", req: asRoot, want: Allowed},
	{name: "root user is bound by a resource deny", resource: []string{pol(principalStmt("Deny", `{"AWS": "`+acct+`"}`))}, req: asRoot, want: ExplicitDeny},
	{name: "root user ignores identity denies", identity: []string{pol(deny(star, star))}, req: asRoot, want: Allowed},
	{name: "no policies", want: ImplicitDeny, wantKind: Identity},

	// Across accounts.
	{name: "cross-account identity allow without resource policy", identity: []string{pol(allow(put, orderQ))}, req: fromOtherAccount,
		want: ImplicitDeny, wantKind: Resource},
	{name: "cross-account resource policy naming the user", identity: []string{pol(allow(put, orderQ))},
		resource: []string{pol(principalStmt("Allow", `{"AWS": "arn:aws:iam::444455556666:user/carol"}`, `"Sid": "Carol"`))}, req: fromOtherAccount,
		want: Allowed, wantKind: Resource, wantSid: "Carol"},
	{name: "cross-account resource policy naming the account id", identity: []string{pol(allow(put, orderQ))},
		resource: []string{pol(principalStmt("Allow", `{"AWS": "444455556666"}`))}, req: fromOtherAccount, want: Allowed},
	{name: "cross-account resource policy naming another account", identity: []string{pol(allow(put, orderQ))},
		resource: []string{pol(principalStmt("Allow", `{"AWS": "arn:aws:iam::777788889999:root"}`))}, req: fromOtherAccount,
		want: ImplicitDeny, wantKind: Resource},
	{name: "cross-account resource allow without identity allow",
		resource: []string{pol(principalStmt("Allow", `{"AWS": "444455556666"}`))}, req: fromOtherAccount,
		want: ImplicitDeny, wantKind: Identity},
	{name: "cross-account Principal star", identity: []string{pol(allow(`"kinesis:*"`, streams))},
		resource: []string{pol(principalStmt("Allow", `"*"`))}, req: fromOtherAccount, want: Allowed},
	{name: "cross-account identity deny", identity: []string{pol(deny(put, star))},
		resource: []string{pol(principalStmt("Allow", `"*"`))}, req: fromOtherAccount, want: ExplicitDeny, wantKind: Identity},
}

func TestDecide(t *testing.T) {
	if len(decideCases) < 60 {
		t.Fatalf("%d cases; the table is meant to hold at least 60", len(decideCases))
	}
	for _, tc := range decideCases {
		t.Run(tc.name, func(t *testing.T) {
			var identity, resource []*Policy
			for i, d := range tc.identity {
				identity = append(identity, mustParse(t, Identity, "identity-"+string(rune('a'+i)), d))
			}
			for _, d := range tc.resource {
				resource = append(resource, mustParse(t, Resource, orders, d))
			}
			req := baseRequest()
			if tc.req != nil {
				tc.req(&req)
			}
			d := Decide(req, identity, resource)
			if d.Outcome != tc.want {
				t.Fatalf("Outcome = %v, want %v (decision %+v)", d.Outcome, tc.want, d)
			}
			if tc.wantKind != 0 && d.Kind != tc.wantKind {
				t.Errorf("Kind = %v, want %v", d.Kind, tc.wantKind)
			}
			if tc.wantSid != "" && d.Sid != tc.wantSid {
				t.Errorf("Sid = %q, want %q", d.Sid, tc.wantSid)
			}
			if (d.Statement >= 0) != (d.Policy != "") {
				t.Errorf("Statement %d with Policy %q: a statement index comes with its policy", d.Statement, d.Policy)
			}
			if d.Allowed() != (d.Message(req) == "") {
				t.Errorf("Allowed() = %v but Message = %q", d.Allowed(), d.Message(req))
			}
		})
	}
}
