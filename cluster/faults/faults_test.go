//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

const shards = 4

// TestKillLeaderUnderLoad kills -9, three times under load, the node leading the most shards,
// restarting it each time: writes to every shard resume (the time is logged beside two
// election timeouts), and at the end no acknowledged record is lost and every shard's
// replicas agree byte for byte.
func TestKillLeaderUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	c.createStream("kill", shards)
	p := c.produce("kill", 10)
	c.resumed(p, shards, time.Now())
	killedLeaders := map[string]bool{}
	for round := range 3 {
		victim := c.leadingMost("kill")
		for id, n := range c.leaders("kill") {
			if n == victim.id-1 {
				killedLeaders[id.String()] = true
			}
		}
		at := time.Now()
		victim.kill()
		took := c.resumed(p, shards, at)
		t.Logf("round %d: killed node %d; writes to every shard resumed %v later (two election timeouts: %v)", round, victim.id, took, 2*electionTimeout)
		victim.start()
	}
	t.Logf("shards whose leader was killed at least once: %d of %d; producer failures: %s", len(killedLeaders), shards, p.failureSummary())
	p.stop()
	c.finish("kill", p)
}

// TestWipedNodeRejoins wipes a node's data directory while it is down. It comes back as a new
// Raft member (a new id in node.json: it never votes with a vote it forgot), catches up and
// serves reads; once every shard's placement records the new id (the new member promoted
// from learner to voter), another node is killed and writes still commit with the rejoined
// node in the majority, which is only possible if the old member was removed and the new one
// added (a group of four voters needs three).
func TestWipedNodeRejoins(t *testing.T) {
	c := startCluster(t, 3)
	c.createStream("wipe", shards)
	p := c.produce("wipe", 10)
	c.resumed(p, shards, time.Now())
	w := c.nodes[1]
	old := w.raftID()
	w.kill()
	w.wipe()
	c.resumed(p, shards, time.Now())
	w.start()
	if id := w.raftID(); id == 0 || id == old {
		t.Fatalf("the wiped node's Raft id is %d, before %d: want a new one", id, old)
	}
	c.converge("wipe", p)
	c.replaced("wipe", w, old)
	other := c.nodes[2]
	at := time.Now()
	other.kill()
	took := c.resumed(p, shards, at)
	t.Logf("node %d killed with node %d rejoined: writes resumed %v later", other.id, w.id, took)
	other.start()
	p.stop()
	c.finish("wipe", p)
}

// TestPausedLeaderIsFenced stops the node leading the most shards with SIGSTOP for three
// election timeouts while the others elect, then resumes it. Whatever it acknowledges after
// it resumes (writes to it were queued in its sockets) must be committed: the checker finds
// every acknowledged record in the committed logs of all replicas.
func TestPausedLeaderIsFenced(t *testing.T) {
	c := startCluster(t, 3)
	c.createStream("pause", shards)
	p := c.produce("pause", 10)
	c.resumed(p, shards, time.Now())
	victim := c.leadingMost("pause")
	victim.signal(syscall.SIGSTOP)
	at := time.Now()
	took := c.resumed(p, shards, at)
	t.Logf("node %d stopped: writes to every shard resumed %v later", victim.id, took)
	time.Sleep(3*electionTimeout - time.Since(at)) // the fault's length, not a synchronisation
	resumedAt := time.Now()
	victim.signal(syscall.SIGCONT)
	// Its producer's writes, queued while it was stopped, are answered now: whatever of them
	// it acknowledges must be committed.
	c.eventually(fmt.Sprintf("node %d acknowledges writes again", victim.id), func() error {
		if n := len(p.acksAfter(resumedAt, victim.id)); n == 0 {
			return errors.New("nothing acknowledged through it yet")
		}
		return nil
	})
	t.Logf("acknowledged through node %d after it resumed: %d; producer failures: %s", victim.id, len(p.acksAfter(resumedAt, victim.id)), p.failureSummary())
	p.stop()
	c.finish("pause", p)
}

// TestEtcdDown stops etcd under load: writes and reads go on (every shard has a Raft
// majority), a control-plane call is refused with a retryable InternalFailure that does not
// name etcd, and once etcd is back the control plane answers again.
func TestEtcdDown(t *testing.T) {
	c := startCluster(t, 3)
	c.createStream("etcd", shards)
	p := c.produce("etcd", 10)
	c.resumed(p, shards, time.Now())
	c.etcd.Stop()
	at := time.Now()
	c.resumed(p, shards, at)
	c.converge("etcd", p)
	ctx := context.Background()
	// A control-plane call waits for etcd up to the node's own bound (5 s per request): this
	// client waits longer, so that the answer is the node's, not the client's timeout.
	patient := kinesis.New(c.nodes[0].kc.Options(), func(o *kinesis.Options) { o.HTTPClient = &http.Client{Timeout: patience} })
	_, err := patient.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("while-etcd-down"), ShardCount: aws.Int32(1)})
	var ae interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if !errors.As(err, &ae) || ae.ErrorCode() != "InternalFailure" || strings.Contains(strings.ToLower(ae.ErrorMessage()), "etcd") {
		t.Fatalf("CreateStream with etcd down: %v, want InternalFailure that does not name etcd", err)
	}
	c.etcd.Start()
	c.eventually("CreateStream once etcd is back", func() error {
		_, err := c.nodes[1].kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("after-etcd"), ShardCount: aws.Int32(1)})
		return err
	})
	t.Logf("acknowledged while etcd was down: %d", len(p.acksAfter(at, 0)))
	p.stop()
	c.finish("etcd", p)
}

// TestPartition cuts the node leading the most shards from its peers with its proxy for three
// election timeouts: the others elect and go on taking writes; after healing, nothing
// acknowledged is lost (through the cut node too: what it acknowledged it forwarded to the
// majority's leaders) and the replicas agree.
func TestPartition(t *testing.T) {
	c := startCluster(t, 3)
	c.createStream("cut", shards)
	p := c.produce("cut", 10)
	c.resumed(p, shards, time.Now())
	victim := c.leadingMost("cut")
	victim.cut()
	at := time.Now()
	took := c.resumed(p, shards, at)
	t.Logf("node %d cut off: writes to every shard resumed %v later", victim.id, took)
	time.Sleep(3*electionTimeout - time.Since(at)) // the fault's length, not a synchronisation
	victim.heal()
	c.resumed(p, shards, time.Now())
	t.Logf("producer failures: %s", p.failureSummary())
	p.stop()
	c.finish("cut", p)
}
