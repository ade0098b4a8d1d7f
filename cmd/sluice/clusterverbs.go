package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-streams/sluice/cluster"
)

// clusterVerbs are the operator's verbs of `sluice cluster`, each talking to etcd.
var clusterVerbs = []struct{ name, args, summary string }{
	{"status", "[-json]", "the nodes (zone, state, up or down, replicas and preferred leaders), the controller and the under-replicated shards"},
	{"drain", "NODE", "move every replica and preferred leadership off node NODE"},
	{"undrain", "NODE", "make a draining node eligible for replicas again"},
	{"rebalance", "", "ask the controller to even replicas and preferred leaders over the nodes now"},
}

// runCluster runs `sluice cluster VERB [flags] [NODE]`.
func runCluster(args []string, stdout, stderr io.Writer) int {
	verbUsage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: sluice cluster VERB --cluster-etcd URL [--cluster-name NAME] [--etcd-* flags] [arguments]")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Verbs:")
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, v := range clusterVerbs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", v.name, v.args, v.summary)
		}
		tw.Flush()
	}
	if len(args) == 0 {
		verbUsage(stderr)
		return exitUsage
	}
	verb := args[0]
	if verb == "-h" || verb == "-help" || verb == "--help" {
		verbUsage(stdout)
		return exitOK
	}
	i := slices.IndexFunc(clusterVerbs, func(v struct{ name, args, summary string }) bool { return v.name == verb })
	if i < 0 {
		fmt.Fprintf(stderr, "sluice cluster: unknown verb %q\n\n", verb)
		verbUsage(stderr)
		return exitUsage
	}
	fs := newFlagSet("cluster "+verb, clusterVerbs[i].args, stderr)
	etcd := fs.String("cluster-etcd", "", "`URL[,URL…]` of the cluster's etcd")
	name := fs.String("cluster-name", cluster.DefaultName, "the cluster's `name`")
	access := addEtcdAccessFlags(fs)
	asJSON := false
	if verb == "status" {
		fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
	}
	var pos []string // the arguments, before, between or after the flags
	for rest := args[1:]; ; rest = fs.Args()[1:] {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
	}
	var node uint64
	switch want := strings.Count(clusterVerbs[i].args, "NODE"); {
	case len(pos) != want:
		fmt.Fprintf(stderr, "sluice cluster %s: want %d argument(s), got %q\n", verb, want, pos)
		fs.Usage()
		return exitUsage
	case want == 1:
		var err error
		if node, err = strconv.ParseUint(pos[0], 10, 64); err != nil || node == 0 {
			fmt.Fprintf(stderr, "sluice cluster %s: node %q: want a node id (1, 2, …)\n", verb, pos[0])
			return exitUsage
		}
	}
	if len(splitEndpoints(*etcd)) == 0 {
		fmt.Fprintf(stderr, "sluice cluster %s: --cluster-etcd is required\n", verb)
		return exitUsage
	}
	cfg, err := access.config(*etcd, *name)
	if err != nil {
		fmt.Fprintf(stderr, "sluice cluster %s: %v\n", verb, err)
		return exitUsage
	}
	c, err := cluster.Dial(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice cluster %s: %v\n", verb, err)
		return exitError
	}
	defer c.Close()
	switch verb {
	case "status":
		err = printClusterStatus(c, asJSON, stdout)
	case "drain":
		if err = c.Drain(node); err == nil {
			fmt.Fprintf(stdout, "node %d is draining: the controller moves its replicas to other nodes\n", node)
		}
	case "undrain":
		if err = c.Undrain(node); err == nil {
			fmt.Fprintf(stdout, "node %d is active; `sluice cluster rebalance` moves replicas back to it now\n", node)
		}
	case "rebalance":
		if err = c.RequestRebalance(); err == nil {
			fmt.Fprintln(stdout, "rebalance requested: the controller evens replicas and preferred leaders; `sluice cluster status` shows the progress")
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice cluster %s: %v\n", verb, clusterVerbError(err))
		return exitError
	}
	return exitOK
}

// clusterVerbError is err as an operator reads it: an etcd that did not answer is named.
func clusterVerbError(err error) error {
	if errors.Is(err, cluster.ErrUnavailable) {
		var se interface{ Unwrap() error }
		if errors.As(err, &se) && se.Unwrap() != nil {
			return se.Unwrap()
		}
	}
	return err
}

// printClusterStatus prints the cluster's status as a table, or as JSON.
func printClusterStatus(c *cluster.Client, asJSON bool, w io.Writer) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	controller := "none elected"
	if st.Controller != 0 {
		controller = "node " + strconv.FormatUint(st.Controller, 10)
	}
	fmt.Fprintf(w, "controller: %s; replication factor %d; %d shards, %d under-replicated", controller, st.ReplicationFactor, st.Shards, len(st.UnderReplicated))
	if st.RebalancePending {
		fmt.Fprint(w, "; rebalance pending")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tZONE\tSTATE\tUP\tADDR\tREPLICAS\tLEADERS\tLAST JOINED")
	for _, n := range st.Nodes {
		up, seen := "down", "-"
		if n.Up {
			up = "up"
		}
		if !n.LastSeen.IsZero() {
			seen = n.LastSeen.UTC().Format(time.RFC3339)
		}
		zone := n.Zone
		if zone == "" {
			zone = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", n.ID, zone, n.State, up, n.Addr, n.Replicas, n.Leaders, seen)
	}
	tw.Flush()
	for _, s := range st.UnderReplicated {
		fmt.Fprintf(w, "under-replicated: %s %s on %v: %d of %d healthy\n", s.Stream, s.Shard, s.Replicas, s.Healthy, st.ReplicationFactor)
	}
	return nil
}
