package server

import (
	"net/netip"
	"testing"

	"github.com/sluice-streams/sluice/iam"
)

// BenchmarkPutRecordAuthz runs PutRecord's operation (decode, engine append with durability
// none, encode) of a 100-byte record, without authorisation ("off", the local default), and
// authorised for an IAM user whose policy allows PutRecord on the stream: without a resource
// policy ("identity") and with one on the stream ("resource-policy"), which costs the look-up
// of the stream's incarnation. The difference is what authorisation adds to a write: the
// ARN, the policy look-up and iam.Decide, with no second decode of the body. Bytes are
// record data bytes.
func BenchmarkPutRecordAuthz(b *testing.B) {
	users, err := ParseIAM([]byte(`{"users": [{"name": "app", "accessKeyId": "AKapp", "secretAccessKey": "s", "policies": [
		{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
		 "Resource": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}]}]}]}`), testAccount)
	if err != nil {
		b.Fatal(err)
	}
	u := &users[0]
	body := []byte(`{"StreamName":"s","PartitionKey":"key","Data":"` + b64(string(make([]byte, 100))) + `"}`)
	for _, mode := range []string{"off", "identity", "resource-policy"} {
		b.Run(mode, func(b *testing.B) {
			eng := openTestEngine(b, 1)
			var opts Options
			if mode != "off" {
				opts.Authenticator = NewSigV4Verifier(testAccount, "us-east-1", users)
			}
			s := New(eng, opts)
			if mode == "resource-policy" {
				if err := s.account.PutPolicy(eng.ARN("s"), `{"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
					"Principal": "*", "Action": "kinesis:DeleteStream", "Resource": "*"}]}`); err != nil {
					b.Fatal(err)
				}
			}
			c := &opCall{action: iam.Actions["PutRecord"], on: s.authorizing, ip: netip.MustParseAddr("127.0.0.1")}
			c.p = Principal{AccessKey: u.AccessKeyID, Account: u.Account, User: u.Name, Identity: u.Parsed, ARN: u.ARN()}
			b.SetBytes(100)
			b.ReportAllocs()
			for b.Loop() {
				c.checked = false
				out, err := opPutRecord(s, c, body)
				if err != nil || !c.checked {
					b.Fatal(err, c.checked)
				}
				putBodyBuf(out.(rawJSON))
			}
		})
	}
}
