package iam

import "testing"

// BenchmarkDecide is the per-request cost of authorisation for a typical user: two identity
// policies, five statements (two of them conditional denies every request must pass), and no
// resource policy, then the same with a resource policy in the way. Decide runs on every
// request, so it must not allocate. It reports no bytes: a decision processes no payload.
func BenchmarkDecide(b *testing.B) {
	identity := []*Policy{
		mustParse(b, Identity, "arn:aws:iam::111122223333:policy/orders-app", pol(
			allow(`["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:Get*", "kinesis:Describe*"]`, `"arn:aws:kinesis:us-east-1:111122223333:stream/orders*"`, `"Sid": "ReadWrite"`),
			allow(`"kinesis:List*"`, star, `"Sid": "List"`),
			allow(`"kinesis:SubscribeToShard"`, `"arn:aws:kinesis:*:111122223333:stream/*/consumer/*"`, `"Sid": "Fanout"`),
		)),
		mustParse(b, Identity, "arn:aws:iam::111122223333:policy/guardrails", pol(
			deny(star, star, `"Sid": "TLSOnly"`, cond("Bool", "aws:SecureTransport", `"false"`)),
			deny(star, star, `"Sid": "Office"`, cond("NotIpAddress", "aws:SourceIp", `["10.0.0.0/8", "203.0.113.0/24", "2001:db8::/32"]`)),
		)),
	}
	resource := []*Policy{mustParse(b, Resource, orders, pol(
		principalStmt("Deny", `{"AWS": "arn:aws:iam::111122223333:user/mallory"}`, `"Sid": "NoMallory"`),
		principalStmt("Allow", `{"AWS": "444455556666"}`, `"Sid": "Partner"`),
	))}
	req := baseRequest()
	req.Action = "kinesis:PutRecords"
	for _, bc := range []struct {
		name     string
		resource []*Policy
	}{{"identity", nil}, {"identity+resource", resource}} {
		b.Run(bc.name, func(b *testing.B) {
			if d := Decide(req, identity, bc.resource); !d.Allowed() || d.Sid != "ReadWrite" {
				b.Fatalf("decision %+v, want an allow by ReadWrite", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				Decide(req, identity, bc.resource)
			}
		})
	}
}
