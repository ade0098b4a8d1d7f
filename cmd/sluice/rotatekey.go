package main

import (
	"flag"
	"fmt"
	"io"
)

// runRotateKey adds a new version of a master key to a keyring, as AWS KMS key rotation
// does, and prints the key id and the new version. Data keys wrapped from then on name the
// new version; the older versions stay to unwrap the data keys they wrapped. A server
// running on the keyring wraps its next data keys under the new version after a SIGHUP
// (or a restart); the keyring may be rotated while it runs. With --cluster-etcd it rotates
// the cluster's keyring in etcd, and every node wraps under the new version after its own
// SIGHUP or restart.
func runRotateKey(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rotate-key", "(--kms-keyring DIR | --cluster-etcd URL) KEY-ID", stderr)
	kf := addKMSFlags(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if !kf.set() || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "sluice rotate-key: --kms-keyring and one KEY-ID (a key id, key ARN, alias/NAME or alias ARN) are required; --cluster-etcd instead of --kms-keyring for a cluster's keyring")
		return exitUsage
	}
	ring, done, err := kf.open()
	if err != nil {
		fmt.Fprintf(stderr, "sluice rotate-key: %v\n", err)
		return exitError
	}
	defer done()
	id, v, err := ring.Rotate(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sluice rotate-key: %v\n", clusterVerbError(err))
		return exitError
	}
	fmt.Fprintf(stdout, "%s version %d\n", id, v)
	return exitOK
}
