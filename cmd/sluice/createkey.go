package main

import (
	"fmt"
	"io"
)

// runCreateKey adds a master key to a keyring (the directory `sluice serve --kms-keyring`
// names, or with --cluster-etcd the cluster's keyring in etcd) and prints its key id;
// --alias points an alias at it. The key material goes to the key's file (or etcd) only.
func runCreateKey(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("create-key", "(--kms-keyring DIR | --cluster-etcd URL) [--alias alias/NAME]", stderr)
	kf := addKMSFlags(fs)
	alias := fs.String("alias", "", "`alias/NAME` to point at the new key, replacing what it named")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	if !kf.set() {
		fmt.Fprintln(stderr, "sluice create-key: --kms-keyring is required, or --cluster-etcd instead for a cluster's keyring")
		return exitUsage
	}
	ring, done, err := kf.open()
	if err != nil {
		fmt.Fprintf(stderr, "sluice create-key: %v\n", err)
		return exitError
	}
	defer done()
	id, err := ring.CreateKey(*alias)
	if err != nil {
		fmt.Fprintf(stderr, "sluice create-key: %v\n", clusterVerbError(err))
		return exitError
	}
	fmt.Fprintln(stdout, id)
	return exitOK
}
