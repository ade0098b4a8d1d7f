package iam

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMalformed(t *testing.T) {
	ok := `{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}`
	tests := []struct {
		name string
		kind Kind
		doc  string
		want string // in the error message
	}{
		{"not JSON", Identity, `{"Version": `, "is not valid JSON"},
		{"an array", Identity, `[` + ok + `]`, "must be a JSON object"},
		{"data after the document", Identity, pol(ok) + `{}`, "data after the JSON object"},
		{"unknown top-level element", Identity, `{"Version": "2012-10-17", "Statements": [` + ok + `]}`, `unknown element "Statements"`},
		{"unknown version", Identity, `{"Version": "2012-10-18", "Statement": ` + ok + `}`, "Version: must be"},
		{"version not a string", Identity, `{"Version": 2012, "Statement": ` + ok + `}`, "Version: must be a string"},
		{"no Statement", Identity, `{"Version": "2012-10-17"}`, "has no Statement"},
		{"empty Statement", Identity, `{"Statement": []}`, "Statement: must not be empty"},
		{"Statement a string", Identity, `{"Statement": "Allow"}`, "Statement: must be an object or an array"},
		{"statement a string", Identity, `{"Statement": ["Allow"]}`, "Statement[0]: must be a JSON object"},
		{"no Effect", Identity, pol(`{"Action": "kinesis:*", "Resource": "*"}`), "Statement[0]: has no Effect"},
		{"Effect in lower case", Identity, pol(`{"Effect": "allow", "Action": "kinesis:*", "Resource": "*"}`), `Effect: must be Allow or Deny, got "allow"`},
		{"no Action", Identity, pol(`{"Effect": "Allow", "Resource": "*"}`), "has no Action or NotAction"},
		{"Action and NotAction", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*", "NotAction": "s3:*", "Resource": "*"}`), "both Action and NotAction"},
		{"action without service", Identity, pol(`{"Effect": "Allow", "Action": "PutRecord", "Resource": "*"}`), `action "PutRecord" must be`},
		{"wildcard service", Identity, pol(`{"Effect": "Allow", "Action": "kin*:PutRecord", "Resource": "*"}`), `action "kin*:PutRecord"`},
		{"empty action list", Identity, pol(`{"Effect": "Allow", "Action": [], "Resource": "*"}`), "Action: must not be an empty array"},
		{"action a number", Identity, pol(`{"Effect": "Allow", "Action": 7, "Resource": "*"}`), "Action: must be a string or an array of strings"},
		{"no Resource", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*"}`), "has no Resource or NotResource"},
		{"Resource and NotResource", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "NotResource": "*"}`), "both Resource and NotResource"},
		{"resource not an ARN", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*", "Resource": "stream/orders"}`), `resource "stream/orders" must be`},
		{"resource with wildcard service", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:*:us-east-1:1:stream/x"}`), "without wildcards"},
		{"identity policy with Principal", Identity, pol(`{"Effect": "Allow", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}`), "must not name a principal"},
		{"resource policy without Principal", Resource, pol(ok), "has no Principal or NotPrincipal"},
		{"Principal and NotPrincipal", Resource, pol(`{"Effect": "Deny", "Principal": "*", "NotPrincipal": "*", "Action": "kinesis:*", "Resource": "*"}`), "both Principal and NotPrincipal"},
		{"principal string not star", Resource, pol(`{"Effect": "Allow", "Principal": "alice", "Action": "kinesis:*", "Resource": "*"}`), `got "alice"`},
		{"principal partial wildcard", Resource, pol(`{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}, "Action": "kinesis:*", "Resource": "*"}`), "cannot be matched with wildcards"},
		{"principal short account", Resource, pol(`{"Effect": "Allow", "Principal": {"AWS": "12345"}, "Action": "kinesis:*", "Resource": "*"}`), `invalid principal "12345"`},
		{"principal unknown type", Resource, pol(`{"Effect": "Allow", "Principal": {"User": "alice"}, "Action": "kinesis:*", "Resource": "*"}`), `unknown principal type "User"`},
		{"principal empty object", Resource, pol(`{"Effect": "Allow", "Principal": {}, "Action": "kinesis:*", "Resource": "*"}`), "names no principal"},
		{"unknown statement element", Identity, pol(`{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Conditions": {}}`), `unknown element "Conditions"`},
		{"duplicate Sid", Identity, pol(`{"Sid": "A", "Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}`, `{"Sid": "A", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}`), `Statement[1].Sid: "A" is used by another statement`},
		{"unknown condition operator", Identity, pol(allow(star, star, cond("StringSortOf", "aws:username", `"a"`))), `unknown condition operator "StringSortOf"`},
		{"unknown set operator", Identity, pol(allow(star, star, cond("ForSomeValues:StringEquals", "aws:username", `"a"`))), `unknown set operator "ForSomeValues"`},
		{"NullIfExists", Identity, pol(allow(star, star, cond("NullIfExists", "aws:username", `"true"`))), `unknown condition operator "NullIfExists"`},
		{"bad IP", Identity, pol(allow(star, star, cond("IpAddress", "aws:SourceIp", `"203.0.113.300/24"`))), `"203.0.113.300/24" is not an IP address`},
		{"bad date", Identity, pol(allow(star, star, cond("DateLessThan", "aws:CurrentTime", `"next tuesday"`))), `"next tuesday" is not a date`},
		{"bad number", Identity, pol(allow(star, star, cond("NumericLessThan", "aws:EpochTime", `"soon"`))), `"soon" is not a number`},
		{"NaN", Identity, pol(allow(star, star, cond("NumericLessThan", "aws:EpochTime", `"NaN"`))), `"NaN" is not a number`},
		{"bad bool", Identity, pol(allow(star, star, cond("Bool", "aws:SecureTransport", `"yes"`))), `"yes" is not true or false`},
		{"condition value an object", Identity, pol(allow(star, star, cond("StringEquals", "aws:username", `{"a": "b"}`))), "must be a string, number or boolean"},
		{"condition value empty array", Identity, pol(allow(star, star, cond("StringEquals", "aws:username", `[]`))), "must not be an empty array"},
		{"condition operator with no key", Identity, pol(allow(star, star, `"Condition": {"StringEquals": {}}`)), "names no condition key"},
		{"literal star variable", Identity, pol(allow(star, `"arn:aws:kinesis:*:*:stream/${*}"`)), "${*} (a literal wildcard character) is not supported"},
		{"unquoted variable default", Identity, pol(allow(star, `"arn:aws:kinesis:*:*:stream/${aws:username, x}"`)), "must be quoted"},
		{"too large", Identity, pol(allow(star, star, `"Sid": "`+strings.Repeat("x", MaxDocumentSize)+`"`)), "more than the 65536 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.kind, "p", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s\n%+v", tt.doc, p)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, doc  string
		kind       Kind
		version    string
		statements int
	}{
		{"Statement as an object", `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}}`, Identity, Version2012, 1},
		{"old version", `{"Version": "2008-10-17", "Id": "x", "Statement": [{"Sid": "1", "Effect": "Deny", "NotAction": ["kinesis:Get*"], "NotResource": "*"}]}`, Identity, Version2008, 1},
		{"no version", `{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}`, Identity, Version2008, 2},
		{"every principal form", `{"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*", "111122223333", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/a/b", "arn:aws:sts::111122223333:assumed-role/r/s"], "Service": "firehose.amazonaws.com"}, "Action": "kinesis:*", "Resource": "*"}]}`, Resource, Version2008, 1},
		{"every operator", `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
			"StringEquals": {"aws:username": "a"}, "StringNotEqualsIgnoreCase": {"aws:username": ["b", "c"]}, "StringLikeIfExists": {"aws:userid": "A*"},
			"NumericGreaterThanEquals": {"aws:EpochTime": 1.5e9}, "NumericLessThanEquals": {"aws:EpochTime": "2000000000"}, "NumericNotEquals": {"aws:EpochTime": 0},
			"DateEquals": {"aws:CurrentTime": "2026-01-31"}, "DateNotEquals": {"aws:CurrentTime": "2026-01-31T10:00:00+02:00"}, "DateGreaterThanEquals": {"aws:CurrentTime": 1700000000},
			"DateLessThanEquals": {"aws:CurrentTime": "2026-01-31T10:00Z"}, "BinaryEquals": {"aws:userid": "QUJD"}, "NotIpAddress": {"aws:SourceIp": ["::1", "10.0.0.0/8"]},
			"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::1:user/a"}, "ArnNotLikeIfExists": {"aws:PrincipalArn": "arn:*"}, "Null": {"aws:SourceIp": false},
			"ForAnyValue:StringLike": {"aws:username": "x*"}, "forallvalues:stringequals": {"aws:userid": "y"}, "bool": {"AWS:SecureTransport": "TRUE"}}}}`, Identity, Version2012, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.kind, "name", tt.doc)
			if p.Version() != tt.version || p.Statements() != tt.statements || p.Kind() != tt.kind || p.Name() != "name" {
				t.Errorf("Version %q Statements %d Kind %v Name %q, want %q %d %v name", p.Version(), p.Statements(), p.Kind(), p.Name(), tt.version, tt.statements, tt.kind)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	req := baseRequest()
	const head = "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:111122223333:stream/orders "
	tests := []struct {
		name     string
		identity []string
		resource []string
		req      func(*Request)
		want     string
	}{
		{"no identity policy allows", nil, nil, nil, head + "because no identity-based policy allows the kinesis:PutRecord action"},
		{"explicit deny in an identity policy", []string{pol(deny(put, star))}, nil, nil, head + "with an explicit deny in an identity-based policy: arn:aws:iam::111122223333:policy/Freeze"},
		{"explicit deny in a resource policy", []string{pol(allow(put, star))}, []string{pol(principalStmt("Deny", `"*"`))}, nil, head + "with an explicit deny in a resource-based policy"},
		{"no resource policy allows", []string{pol(allow(put, star))}, nil, fromOtherAccount,
			"User: arn:aws:iam::444455556666:user/carol is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:111122223333:stream/orders because no resource-based policy allows the kinesis:PutRecord action"},
		{"cross-account identity deny has no policy ARN", []string{pol(deny(put, star))}, nil, fromOtherAccount,
			"User: arn:aws:iam::444455556666:user/carol is not authorized to perform: kinesis:PutRecord on resource: arn:aws:kinesis:us-east-1:111122223333:stream/orders with an explicit deny in an identity-based policy"},
		{"allowed", []string{pol(allow(put, star))}, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var identity, resource []*Policy
			for _, d := range tt.identity {
				identity = append(identity, mustParse(t, Identity, "arn:aws:iam::111122223333:policy/Freeze", d))
			}
			for _, d := range tt.resource {
				resource = append(resource, mustParse(t, Resource, orders, d))
			}
			r := req
			if tt.req != nil {
				tt.req(&r)
			}
			if got := Decide(r, identity, resource).Message(r); got != tt.want {
				t.Errorf("Message\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestActions(t *testing.T) {
	if len(Actions) != 39 {
		t.Errorf("%d operations, the 2013-12-02 API has 39", len(Actions))
	}
	for op, a := range Actions {
		if a.Action != "kinesis:"+op {
			t.Errorf("%s: action %q, want kinesis:%s", op, a.Action, op)
		}
	}
	want := map[string]ResourceKind{
		"SubscribeToShard": ResourceConsumer, "DescribeStreamConsumer": ResourceConsumer, "RegisterStreamConsumer": ResourceStream,
		"ListStreams": ResourceNone, "PutResourcePolicy": ResourceStreamOrConsumer, "PutRecords": ResourceStream, "DescribeLimits": ResourceNone,
	}
	for op, k := range want {
		if Actions[op].Resource != k {
			t.Errorf("%s is checked on %v, want %v", op, Actions[op].Resource, k)
		}
	}
	for op, a := range NativeActions {
		if Actions[a.Action[len("kinesis:"):]] != a {
			t.Errorf("native %s maps to %+v, which is not its Kinesis operation's entry", op, a)
		}
	}
}
