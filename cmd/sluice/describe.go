package main

import (
	"context"
	"io"

	"github.com/sluice-streams/sluice/tools/cli"
)

// runDescribe prints a stream, its shards and its consumers.
func runDescribe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("describe", "--stream S [--json]", stderr)
	sf := addStreamFlags(fs)
	withDescription(fs, `
Prints the stream's status, mode, retention, encryption and counts, its shards (open or
closed, parents, hash key and sequence number ranges) and its enhanced fan-out consumers.`)
	if _, status, stop := parseVerbFlags(fs, sf, args, 0); stop {
		return status
	}
	c, status, ok := sf.newClient("describe", stderr)
	if !ok {
		return status
	}
	defer c.Close()
	d, err := cli.Describe(context.Background(), c, sf.stream)
	if err == nil {
		err = d.Write(cli.Output{W: stdout, JSON: sf.json})
	}
	if err != nil {
		return sf.fail("describe", stderr, err)
	}
	return exitOK
}
