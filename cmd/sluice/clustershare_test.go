package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The IAM file of TestClusterSharesIteratorsAndPolicies: admin and reader may do anything
// their identity policies allow (everything); a resource policy can still deny reader.
const sharedIAM = `{"users": [
 {"name": "admin", "accessKeyId": "AKIDADMIN", "secretAccessKey": "admin-secret",
  "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
 {"name": "reader", "accessKeyId": "AKIDREADER", "secretAccessKey": "reader-secret",
  "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`

// sdkClient is an AWS SDK client of node n, signing as the IAM file's user key.
func sdkClient(n *clusterNode, key, secret string) *kds.Client {
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, nil
	})
	return kds.New(kds.Options{Region: "us-east-1", BaseEndpoint: aws.String(n.base()), Credentials: creds, RetryMaxAttempts: 1})
}

// TestClusterSharesIteratorsAndPolicies runs three `sluice serve --iam` nodes on one etcd.
//
// Iterators: a shard iterator GetShardIterator issued on node 1 reads on node 2, and each
// NextShardIterator is used on the next node in turn, through the AWS SDK for Go v2 and
// through the native client's Kinesis calls; the native get carries its next position from
// node to node. Every record acknowledged is read, and the sequence numbers read never go
// backwards or repeat, whichever node serves the read (each serves committed records only).
//
// Resource policies: one put through node 1 that denies reader DescribeStreamSummary is
// enforced by nodes 2 and 3 within the wait; deleted through node 3, reader is allowed on
// node 1 again.
func TestClusterSharesIteratorsAndPolicies(t *testing.T) {
	iamFile := filepath.Join(t.TempDir(), "iam.json")
	if err := os.WriteFile(iamFile, []byte(sharedIAM), 0o600); err != nil {
		t.Fatal(err)
	}
	etcd := etcdtest.Start(t, etcdtest.Embedded).Endpoints()[0]
	var nodes []*clusterNode
	for i := 1; i <= 3; i++ {
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		n := &clusterNode{id: i, addr: addr, dir: t.TempDir(), args: []string{"--iam", iamFile, "--limits", "off"}}
		startNode(t, n, etcd)
		nodes = append(nodes, n)
	}
	waitLong(t, "three nodes registered", func() bool {
		c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
		if err != nil {
			return false
		}
		defer c.Close()
		m, err := c.Members()
		return err == nil && len(m) == 3
	})
	ctx := context.Background()
	admin := make([]*kds.Client, 3)
	reader := make([]*kds.Client, 3)
	for i, n := range nodes {
		admin[i], reader[i] = sdkClient(n, "AKIDADMIN", "admin-secret"), sdkClient(n, "AKIDREADER", "reader-secret")
	}
	const name = "shared"
	if _, err := admin[0].CreateStream(ctx, &kds.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	var arn *string
	for _, kc := range admin {
		waitLong(t, "the stream on every node", func() bool {
			out, err := kc.DescribeStreamSummary(ctx, &kds.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err == nil {
				arn = out.StreamDescriptionSummary.StreamARN
			}
			return err == nil
		})
	}

	// 40 records through every node in turn, each retried until it is acknowledged (a
	// shard without a leader yet refuses it).
	acked := map[string]map[string]bool{} // shard id → sequence numbers
	for i := range 40 {
		kc := admin[i%3]
		waitLong(t, "a put acknowledged", func() bool {
			out, err := kc.PutRecord(ctx, &kds.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(fmt.Sprint("k", i)),
				Data: []byte(fmt.Sprint("record ", i))})
			if err != nil {
				return false
			}
			sh := aws.ToString(out.ShardId)
			if acked[sh] == nil {
				acked[sh] = map[string]bool{}
			}
			acked[sh][aws.ToString(out.SequenceNumber)] = true
			return true
		})
	}

	t.Run("SDK iterators move between nodes", func(t *testing.T) {
		for sh, want := range acked {
			it, err := admin[0].GetShardIterator(ctx, &kds.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(sh),
				ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			iter := it.ShardIterator
			var last stream.SeqNum
			seen := map[string]bool{}
			call := 0
			waitLong(t, "every acknowledged record of "+sh+" read across the nodes", func() bool {
				call++
				node := call % 3 // node 2 first, then 3, then 1, …
				out, err := admin[node].GetRecords(ctx, &kds.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(3)})
				if err != nil {
					t.Fatalf("GetRecords on node %d with an iterator from the node before: %v", node+1, err)
				}
				for _, r := range out.Records {
					s, err := stream.ParseSeqNum(aws.ToString(r.SequenceNumber))
					if err != nil {
						t.Fatal(err)
					}
					if seen[s.String()] || !last.Less(s) && last != (stream.SeqNum{}) {
						t.Fatalf("node %d returned %s after %s: the read went backwards", node+1, s, last)
					}
					seen[s.String()], last = true, s
				}
				iter = out.NextShardIterator
				for seq := range want {
					if !seen[seq] {
						return false
					}
				}
				return true
			})
			t.Logf("shard %s: %d records read in %d calls spread over the three nodes", sh, len(seen), call)
		}
	})

	t.Run("native client across nodes", func(t *testing.T) {
		nc := make([]*client.Client, 3)
		for i, n := range nodes {
			c, err := client.New(client.Config{Endpoint: n.base(), Region: "us-east-1",
				Credentials: &client.Credentials{AccessKeyID: "AKIDADMIN", SecretAccessKey: "admin-secret"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nc[i] = c
		}
		for sh, want := range acked {
			id, err := shardmap.ParseShardID(sh)
			if err != nil {
				t.Fatal(err)
			}
			// The native get: the next position one node answers is where the next node
			// reads.
			wantPos := map[uint64]bool{}
			for seq := range want {
				s, err := stream.ParseSeqNum(seq)
				if err != nil {
					t.Fatal(err)
				}
				wantPos[s.Pos] = true
			}
			start, next, call, read := client.TrimHorizon, uint64(0), 0, 0
			var last uint64
			waitLong(t, "every acknowledged record of "+sh+" through native gets", func() bool {
				call++
				out, err := nc[call%3].GetRecords(ctx, name, client.GetInput{Shard: uint32(id), Start: start, Value: next, MaxRecords: 4})
				if err != nil {
					t.Fatalf("native get on node %d: %v", call%3+1, err)
				}
				defer out.Release()
				for _, r := range out.Records {
					if read > 0 && r.Position <= last {
						t.Fatalf("node %d returned position %d after %d", call%3+1, r.Position, last)
					}
					last, read = r.Position, read+1
					delete(wantPos, r.Position)
				}
				if out.Next < next {
					t.Fatalf("node %d moved the next position back from %d to %d", call%3+1, next, out.Next)
				}
				start, next = client.AtSequenceNumber, out.Next
				return len(wantPos) == 0
			})
			// Kinesis calls of the native client: an iterator from node 3 read on node 1.
			var it struct{ ShardIterator string }
			if err := nc[2].CallKinesis(ctx, "GetShardIterator", map[string]any{"StreamName": name, "ShardId": sh, "ShardIteratorType": "TRIM_HORIZON"}, &it); err != nil {
				t.Fatal(err)
			}
			var recs struct {
				Records           []struct{ SequenceNumber string }
				NextShardIterator string
			}
			if err := nc[0].CallKinesis(ctx, "GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &recs); err != nil {
				t.Fatalf("GetRecords on node 1 with node 3's iterator: %v", err)
			}
			if recs.NextShardIterator == "" {
				t.Fatal("no next iterator")
			}
			for _, r := range recs.Records {
				if !want[r.SequenceNumber] {
					t.Fatalf("node 1 read %s, which was not acknowledged", r.SequenceNumber)
				}
			}
		}
	})

	t.Run("resource policy on every node", func(t *testing.T) {
		describe := func(kc *kds.Client) error {
			_, err := kc.DescribeStreamSummary(ctx, &kds.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			return err
		}
		denied := func(err error) bool {
			var ae interface{ ErrorCode() string }
			return errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException"
		}
		for i, kc := range reader {
			if err := describe(kc); err != nil {
				t.Fatalf("reader on node %d before any policy: %v", i+1, err)
			}
		}
		policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::000000000000:user/reader"},` +
			`"Action":"kinesis:DescribeStreamSummary","Resource":"*"}]}`
		if _, err := admin[0].PutResourcePolicy(ctx, &kds.PutResourcePolicyInput{ResourceARN: arn, Policy: aws.String(policy)}); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{1, 2} {
			waitFor(t, fmt.Sprintf("the policy enforced on node %d", i+1), func() bool { return denied(describe(reader[i])) })
		}
		if err := describe(admin[1]); err != nil {
			t.Fatalf("admin, whom the policy does not name, on node 2: %v", err)
		}
		if got, err := admin[2].GetResourcePolicy(ctx, &kds.GetResourcePolicyInput{ResourceARN: arn}); err != nil || aws.ToString(got.Policy) != policy {
			t.Fatalf("GetResourcePolicy on node 3: %v %v", got, err)
		}
		if _, err := admin[2].DeleteResourcePolicy(ctx, &kds.DeleteResourcePolicyInput{ResourceARN: arn}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "reader allowed on node 1 again", func() bool { return describe(reader[0]) == nil })
	})
}
