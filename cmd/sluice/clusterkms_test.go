package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-streams/sluice/cluster"
)

// TestClusterEncryption runs three `sluice serve` nodes on one etcd with an encrypted
// stream: records sealed by whichever node leads a shard are read back in the clear through
// every node, under the AWS managed key (alias/aws/kinesis, which two nodes may create at
// once), then under a key `sluice create-key --cluster-etcd` made, after `sluice rotate-key
// --cluster-etcd` added a version of it and SIGHUP made the nodes seal under data keys that
// version wraps (found in the catalog in etcd), after a
// kill -9 of the node leading the most shards (the new leaders seal under data keys of their
// own), and after that node restarts. No file of any node's data directory holds a record's
// data, and every node's keyring cache is private (0700, files 0600).
func TestClusterEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "sealed"
	etcd, nodes := startCluster(t, name, 2)
	encrypt := func(n *clusterNode, keyID string) {
		t.Helper()
		kinesis(t, n.base(), "StartStreamEncryption", map[string]any{"StreamName": name, "EncryptionType": "KMS", "KeyId": keyID}, nil)
		for _, n := range nodes {
			waitLong(t, fmt.Sprintf("node %d to see key %s", n.id, keyID), func() bool {
				var d struct {
					StreamDescriptionSummary struct{ EncryptionType, KeyId string }
				}
				status, _ := kinesisTry(n.base(), "DescribeStreamSummary", map[string]any{"StreamName": name}, &d)
				return status == 200 && d.StreamDescriptionSummary.EncryptionType == "KMS" && d.StreamDescriptionSummary.KeyId == keyID
			})
		}
	}
	putEverywhere := func(live []*clusterNode, tag string, n int) []acked {
		var out []acked
		for _, node := range live {
			out = append(out, putAll(t, node.base(), name, fmt.Sprintf("%s-via-%d", tag, node.id), n)...)
		}
		return out
	}

	encrypt(nodes[1], "alias/aws/kinesis")
	all := putEverywhere(nodes, "managed", 20)
	readableNow(t, nodes, name)
	checkReadable(t, nodes, name, all)

	out, err := sluiceCmd("create-key", "--cluster-etcd", etcd, "--alias", "alias/orders").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice create-key --cluster-etcd: %v\n%s", err, out)
	}
	keyID := strings.TrimSpace(string(out))
	encrypt(nodes[2], "alias/orders")
	all = append(all, putEverywhere(nodes, "created", 20)...)
	readableNow(t, nodes, name)
	checkReadable(t, nodes, name, all)

	out, err = sluiceCmd("rotate-key", "--cluster-etcd", etcd, "alias/orders").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice rotate-key --cluster-etcd: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), keyID+" version 2"; got != want {
		t.Fatalf("sluice rotate-key printed %q, want %q", got, want)
	}
	for _, n := range nodes {
		if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// Once the nodes have handled their SIGHUP they seal under data keys version 2 wraps:
	// put through each in turn until the catalog in etcd holds one. (Which nodes make one
	// depends on which receive puts: a node makes its data key at its first put, forwarded
	// or not.)
	c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wrappedByV2 := func() int {
		entries, _, err := c.Catalog().Load()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			var m struct {
				DataKeys []struct {
					Master  string
					Version uint32
				}
			}
			if err := json.Unmarshal(e.Data, &m); err != nil {
				t.Fatal(err)
			}
			for _, dk := range m.DataKeys {
				if dk.Master == keyID && dk.Version == 2 {
					n++
				}
			}
		}
		return n
	}
	round := 0
	waitLong(t, "a data key wrapped by version 2", func() bool {
		n := nodes[round%3]
		round++
		all = append(all, putAll(t, n.base(), name, fmt.Sprintf("rotated-%d-via-%d", round, n.id), 2)...)
		return wrappedByV2() > 0
	})
	all = append(all, putEverywhere(nodes, "rotated", 10)...)
	t.Logf("%d data keys wrapped by version 2 after %d rounds of puts", wrappedByV2(), round)
	checkReadable(t, nodes, name, all)

	// kill -9 of the node leading the most shards: the survivors elect, seal under data keys
	// of their own, and read everything.
	waitLong(t, "a leader for every shard", func() bool {
		total := 0
		for _, n := range nodes {
			total += len(n.leads())
		}
		return total == 2
	})
	victim := nodes[0]
	for _, n := range nodes[1:] {
		if len(n.leads()) > len(victim.leads()) {
			victim = n
		}
	}
	t.Logf("node %d leads %v: killing it with SIGKILL", victim.id, victim.leads())
	victim.kill9()
	var live []*clusterNode
	for _, n := range nodes {
		if n != victim {
			live = append(live, n)
		}
	}
	all = append(all, putEverywhere(live, "after-kill", 20)...)
	readableNow(t, live, name)
	checkReadable(t, live, name, all)

	startNode(t, victim, etcd)
	all = append(all, putEverywhere(nodes, "after-restart", 20)...)
	readableNow(t, nodes, name)
	checkReadable(t, nodes, name, all)

	for _, n := range nodes {
		n.stop(t)
	}
	for _, n := range nodes {
		checkSealedOnDisk(t, n, all)
	}
}

// readableNow reads every shard of stream name from TRIM_HORIZON once through every node
// and fails on any error: a record a node cannot open is an error at once, not a wait.
func readableNow(t *testing.T, nodes []*clusterNode, name string) {
	t.Helper()
	for _, n := range nodes {
		for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
			var it struct{ ShardIterator string }
			kinesis(t, n.base(), "GetShardIterator", map[string]any{"StreamName": name, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}, &it)
			if status, body := kinesisTry(n.base(), "GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, nil); status != 200 {
				t.Fatalf("node %d: GetRecords of %s: %d %s", n.id, shard, status, body)
			}
		}
	}
}

// checkSealedOnDisk checks that no file of a stopped node's data directory holds the data of
// an acknowledged record, and that its keyring cache is readable by its owner only.
func checkSealedOnDisk(t *testing.T, n *clusterNode, all []acked) {
	t.Helper()
	err := filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(path, "kms-keyring") {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("node %d: %s has mode %v", n.id, path, fi.Mode().Perm())
			}
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, a := range all {
			if bytes.Contains(b, []byte(a.data)) {
				t.Fatalf("node %d: %s holds %q in the clear", n.id, path, a.data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "kms-keyring")); err != nil {
		t.Errorf("node %d has no keyring cache: %v", n.id, err)
	}
}
