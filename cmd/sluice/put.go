package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sluice-streams/sluice/tools/cli"
)

// stdin is what `sluice put` reads records from when no DATA is given; tests replace it.
var stdin io.Reader = os.Stdin

// runPut appends one record (DATA given) or one record per line of stdin.
func runPut(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("put", "--stream S [--partition-key K] [--explicit-hash-key H] [DATA]", stderr)
	sf := addStreamFlags(fs)
	key := fs.String("partition-key", "", "partition `key`, 1 to 256 characters (required with DATA; without it each line of stdin gets a random key)")
	hashKey := fs.String("explicit-hash-key", "", "route the record by this decimal `hash key` instead of the key's MD5 (DATA only)")
	b64 := fs.Bool("base64", false, "DATA, or each line, is base64: decode it before sending (for binary data)")
	withDescription(fs, `
Appends DATA as one record with a direct put request, or, without DATA, each line of
standard input as a record (batched by the producer; the records of a key keep their
order). Prints each appended record's shard and sequence number, in input order.`)
	pos, status, stop := parseVerbFlags(fs, sf, args, 1)
	if stop {
		return status
	}
	in := cli.PutInput{Stream: sf.stream, Key: *key, ExplicitHashKey: *hashKey, Base64: *b64}
	if len(pos) == 1 && *key == "" {
		fmt.Fprintln(stderr, "sluice put: --partition-key is required with DATA")
		fs.Usage()
		return exitUsage
	}
	c, status, ok := sf.newClient("put", stderr)
	if !ok {
		return status
	}
	defer c.Close()
	ctx := context.Background()
	out := cli.Output{W: stdout, Diag: stderr, JSON: sf.json}
	if len(pos) == 1 {
		if _, err := cli.PutRecord(ctx, c, in, []byte(pos[0]), out); err != nil {
			return sf.fail("put", stderr, err)
		}
		return exitOK
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "sluice put: reading records from the terminal, one per line; Ctrl-D ends")
		}
	}
	if _, err := cli.PutLines(ctx, c, in, stdin, out); err != nil {
		return sf.fail("put", stderr, err)
	}
	return exitOK
}
