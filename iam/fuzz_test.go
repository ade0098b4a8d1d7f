package iam

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// fuzzSeeds are documents of every shape the parser knows, for both fuzz targets.
func fuzzSeeds() []string {
	seeds := []string{
		pol(allow(`"kinesis:*"`, streams), deny(put, orderQ, cond("NotIpAddress", "aws:SourceIp", `["10.0.0.0/8", "2001:db8::/32"]`))),
		pol(principalStmt("Allow", `{"AWS": ["444455556666", "arn:aws:iam::111122223333:user/bob"]}`, cond("DateLessThanIfExists", "aws:CurrentTime", `"2027-01-01"`))),
		pol(`{"Effect": "Deny", "NotPrincipal": {"AWS": "` + aliceARN + `"}, "NotAction": "kinesis:Get*", "NotResource": "*"}`),
		`{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"ForAllValues:StringLike": {"aws:username": ["a?c", "*"]}, "Null": {"aws:userid": "false"}}}}`,
		`{"Version": "2008-10-17", "Statement": [{"Sid": "x", "Effect": "Allow", "Principal": "*", "Action": "kinesis:PutRecord", "Resource": "arn:aws:kinesis:*"}]}`,
		`{"Statement": []}`, `[]`, `{`, ``,
	}
	for _, tc := range decideCases[:10] {
		seeds = append(seeds, tc.identity...)
	}
	return seeds
}

// FuzzParsePolicy checks that Parse never panics, that every error wraps ErrMalformed, that
// an accepted document has statements, and that parsing is deterministic.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, kind := range []Kind{Identity, Resource} {
			p, err := Parse(kind, "p", doc)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				_, err2 := Parse(kind, "p", doc)
				if err2 == nil || err2.Error() != err.Error() {
					t.Fatalf("Parse is not deterministic: %v, then %v", err, err2)
				}
				continue
			}
			if p.Statements() == 0 || p.Kind() != kind {
				t.Fatalf("accepted a policy with %d statements of kind %v", p.Statements(), p.Kind())
			}
		}
	})
}

// FuzzDecide checks that Decide never panics on a parsed policy and any request, and that
// its decision is well formed: an outcome, a statement index inside its policy, a message
// exactly when it denies.
func FuzzDecide(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add([]byte(s), "kinesis:PutRecord", orders, []byte{203, 0, 113, byte(i)}, "alice", int64(1780315200), i%2 == 0)
	}
	f.Add([]byte(fuzzSeeds()[1]), "kinesis:putrecord", "arn:aws:kinesis:us-east-1:444455556666:stream/x", []byte{}, "", int64(0), false)
	f.Fuzz(func(t *testing.T, doc []byte, action, resource string, ip []byte, user string, epoch int64, secure bool) {
		idp, err1 := Parse(Identity, "identity", doc)
		rp, err2 := Parse(Resource, "resource", doc)
		if err1 != nil && err2 != nil {
			return
		}
		var identity, res []*Policy
		if err1 == nil {
			identity = []*Policy{idp}
		}
		if err2 == nil {
			res = []*Policy{rp}
		}
		addr, _ := netip.AddrFromSlice(ip)
		req := Request{
			Principal:       Principal{Account: acct, ARN: "arn:aws:iam::111122223333:user/" + user, UserName: user, UserID: user},
			Action:          action,
			Resource:        resource,
			SourceIP:        addr,
			SecureTransport: secure,
		}
		if epoch != 0 {
			req.Time = time.Unix(epoch%(1<<40), 0)
		}
		for _, r := range []Request{req, func() Request { r := req; asRoot(&r); return r }(), func() Request { r := req; fromOtherAccount(&r); return r }()} {
			d := Decide(r, identity, res)
			if d.Outcome > ExplicitDeny {
				t.Fatalf("outcome %d", d.Outcome)
			}
			if d.Statement >= 0 {
				var p *Policy
				switch d.Kind {
				case Identity:
					p = idp
				case Resource:
					p = rp
				}
				if p == nil || d.Statement >= p.Statements() || d.Policy != p.Name() {
					t.Fatalf("decision %+v names a statement that does not exist", d)
				}
			}
			if d.Allowed() != (d.Message(r) == "") {
				t.Fatalf("decision %+v with message %q", d, d.Message(r))
			}
		}
	})
}
