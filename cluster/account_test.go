package cluster_test

import (
	"errors"
	"testing"

	"github.com/sluice-streams/sluice/account"
	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

var _ account.Store = (*cluster.AccountStore)(nil)

// accountOf is the account of engine e with its settings in the cluster's etcd.
func accountOf(t *testing.T, c *cluster.Client, e *stream.Engine) *account.Account {
	t.Helper()
	a, err := account.OpenStore(e, c.AccountStore())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

const denyPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"111122223333"},"Action":"kinesis:GetRecords","Resource":"*"}]}`

// TestAccountSettingsShared: two nodes, each an engine and an account on one etcd. A resource
// policy put through one is in force on the other (ResourcePolicy, what the server
// authorises with) and deleted through the other is gone from the first; the billing
// commitment, warm throughput and consumer tags read the same on both; the settings of a
// deleted stream leave etcd with it, so a stream created again under its name starts
// without them; two nodes changing the same record at once both succeed, one after the
// other, and neither change is lost.
func TestAccountSettingsShared(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		c1, c2 := dial(t, srv, "acct", nil), dial(t, srv, "acct", nil)
		e1, e2 := node(t, c1, t.TempDir()), node(t, c2, t.TempDir())
		a1, a2 := accountOf(t, c1, e1), accountOf(t, c2, e2)
		if err := e1.CreateStream(stream.CreateStreamInput{Name: "od", Mode: stream.ModeOnDemand}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the stream on node 2", func() bool { _, err := e2.State("od"); return err == nil })
		arn := e1.ARN("od")

		if err := a1.PutPolicy(arn, denyPolicy); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the policy in force on node 2", func() bool {
			p, err := a2.ResourcePolicy(arn)
			return err == nil && p != nil
		})
		if p, err := a2.Policy(arn); err != nil || p != denyPolicy {
			t.Fatalf("GetResourcePolicy on node 2: %q %v", p, err)
		}
		if err := a2.DeletePolicy(arn); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the policy gone from node 1", func() bool {
			p, err := a1.ResourcePolicy(arn)
			return err == nil && p == nil
		})

		if _, err := a1.SetCommitment(account.CommitmentEnabled); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the commitment on node 2", func() bool {
			cm, err := a2.Commitment()
			return err == nil && cm.Status == account.CommitmentEnabled
		})
		if _, _, err := a2.SetWarmThroughput("od", 100); err != nil {
			t.Fatal(err)
		}
		cons, err := e1.RegisterConsumer("od", "app")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the consumer on node 2", func() bool { _, err := e2.DescribeConsumer("od", "app", ""); return err == nil })
		if err := a2.TagResource(cons.ARN, map[string]string{"team": "x"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "warm throughput and consumer tags on node 1", func() bool {
			w, ok, err := a1.WarmThroughput("od")
			tags, terr := a1.ResourceTags(cons.ARN)
			return err == nil && ok && w == 100 && terr == nil && len(tags) == 1 && tags[0].Value == "x"
		})

		// Both change the stream's record from the same revision: the second to write
		// meets a conflict, reads again and applies its change on top of the first.
		if _, _, err := a1.SetWarmThroughput("od", 200); err != nil {
			t.Fatal(err)
		}
		if err := a2.TagResource(cons.ARN, map[string]string{"env": "y"}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []*account.Account{a1, a2} {
			eventually(t, "both changes on every node", func() bool {
				w, _, err := a.WarmThroughput("od")
				tags, terr := a.ResourceTags(cons.ARN)
				return err == nil && w == 200 && terr == nil && len(tags) == 2
			})
		}
		// A save from a revision another save replaced is refused whole.
		store := c1.AccountStore()
		recs, _, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		var rec account.Record
		for _, r := range recs {
			if r.Name == "od" {
				rec = r
			}
		}
		if rec.Rev == 0 {
			t.Fatalf("no record of the stream in %+v", recs)
		}
		if _, err := store.Save([]account.Record{rec}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Save([]account.Record{{Name: "new", Data: []byte(`{"gen":1}`)}, rec}); !errors.Is(err, account.ErrConflict) {
			t.Fatalf("a save from a replaced revision: %v", err)
		}
		if recs, _, err := store.Load(); err != nil || len(recs) != 2 {
			t.Fatalf("after a refused save, want the account's and the stream's records: %+v %v", recs, err)
		}

		if err := a1.PutPolicy(arn, denyPolicy); err != nil {
			t.Fatal(err)
		}
		if err := e2.DeleteStream("od", true); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the stream gone from node 1", func() bool { _, err := e1.State("od"); return err != nil })
		if err := e1.CreateStream(stream.CreateStreamInput{Name: "od", Mode: stream.ModeOnDemand}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []*account.Account{a1, a2} {
			eventually(t, "no policy on the new stream", func() bool {
				p, err := a.Policy(arn)
				return err == nil && p == "{}"
			})
		}
		recs, _, err = store.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Name == "od" {
				t.Fatalf("the deleted stream's settings are still in etcd: %s", r.Data)
			}
		}
	})
}
