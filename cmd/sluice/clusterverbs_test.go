package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
)

// TestClusterVerbs runs the operator's verbs against a real etcd holding three nodes:
// status lists them with their zones; drain and undrain change a node's state and refuse an
// unknown one; rebalance leaves a request the controller takes and clears; bad command lines
// are usage errors.
func TestClusterVerbs(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	url := srv.Endpoints()[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := cluster.Dial(cluster.Config{Endpoints: srv.Endpoints(), Name: "verbs"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for id, zone := range map[uint64]string{1: "a", 2: "b", 3: "c"} {
		if _, err := c.JoinNode(ctx, cluster.Node{ID: id, Addr: "127.0.0.1:1", Zone: zone}); err != nil {
			t.Fatal(err)
		}
	}
	verb := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"cluster"}, args...), &out, &errOut); code != want {
			t.Fatalf("sluice cluster %q: exit %d, want %d; %s%s", args, code, want, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}
	flags := []string{"--cluster-etcd", url, "--cluster-name", "verbs"}
	status := func() cluster.Status {
		t.Helper()
		out, _ := verb(exitOK, append([]string{"status", "-json"}, flags...)...)
		var st cluster.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status -json: %v: %s", err, out)
		}
		return st
	}
	out, _ := verb(exitOK, append([]string{"status"}, flags...)...)
	for _, want := range []string{"controller: none elected", "1     a     active  up", "3     c     active  up"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status does not say %q:\n%s", want, out)
		}
	}
	if _, e := verb(exitError, append([]string{"drain", "9"}, flags...)...); !strings.Contains(e, "node 9 never joined") {
		t.Fatalf("drain of an unknown node: %s", e)
	}
	verb(exitOK, append([]string{"drain", "2"}, flags...)...)
	if st := status(); st.Nodes[1].State != cluster.StateDraining || st.Nodes[0].State != cluster.StateActive {
		t.Fatalf("after drain 2: %+v", st.Nodes)
	}
	verb(exitOK, append([]string{"undrain", "2"}, flags...)...)
	if st := status(); st.Nodes[1].State != cluster.StateActive {
		t.Fatalf("after undrain 2: %+v", st.Nodes)
	}
	verb(exitOK, append([]string{"rebalance"}, flags...)...)
	if st := status(); !st.RebalancePending || st.Controller != 0 {
		t.Fatalf("after rebalance with no controller: %+v", st)
	}
	ct, err := c.NewController(cluster.ControllerConfig{NodeID: 1, Every: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go ct.Run(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for st := status(); st.Controller != 1 || st.RebalancePending; st = status() {
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not take the rebalance: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	verb(exitUsage, "drain", "x", "--cluster-etcd", url)
	verb(exitUsage, "status")
	verb(exitUsage, "explode", "--cluster-etcd", url)
	verb(exitUsage, append([]string{"undrain"}, flags...)...)
}
