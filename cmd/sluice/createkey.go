package main

import (
	"fmt"
	"io"

	"github.com/sluice-streams/sluice/internal/keyring"
)

// runCreateKey adds a master key to a keyring (the directory `sluice serve --kms-keyring`
// names) and prints its key id; --alias points an alias at it. The key material goes to the
// key's file only.
func runCreateKey(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("create-key", "--kms-keyring DIR [--alias alias/NAME]", stderr)
	dir := fs.String("kms-keyring", "", "keyring `directory` (created 0700); a server's default is DATA-DIR/kms-keyring")
	alias := fs.String("alias", "", "`alias/NAME` to point at the new key, replacing what it named")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "sluice create-key: --kms-keyring is required")
		return exitUsage
	}
	id, err := keyring.Open(*dir).CreateKey(*alias)
	if err != nil {
		fmt.Fprintf(stderr, "sluice create-key: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, id)
	return exitOK
}
