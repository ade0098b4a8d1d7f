package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sluice-streams/sluice/tools/cli"
)

// runGet reads a shard once, as get-shard-iterator followed by get-records would.
func runGet(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("get", "--stream S --shard-id ID [--type T] [--sequence-number N | --timestamp T] [--limit N]", stderr)
	sf := addStreamFlags(fs)
	var in cli.GetInput
	fs.StringVar(&in.Shard, "shard-id", "", "`shard` to read: shardId-000000000000, or its index (default: the shard of --sequence-number)")
	fs.StringVar(&in.Type, "type", "", "iterator `type`: TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP\n(default AT_SEQUENCE_NUMBER with --sequence-number, AT_TIMESTAMP with --timestamp, else TRIM_HORIZON)")
	fs.StringVar(&in.SequenceNumber, "sequence-number", "", "56-digit sequence `number` for AT_ and AFTER_SEQUENCE_NUMBER")
	fs.StringVar(&in.Timestamp, "timestamp", "", "`time` for AT_TIMESTAMP: RFC 3339 (2024-05-04T20:21:32Z) or Unix seconds")
	fs.IntVar(&in.Limit, "limit", 10000, "most `records` to read, 1 to 10000")
	fs.BoolVar(&in.Raw, "raw", false, "print KPL aggregated records as stored, not as their user records")
	withDescription(fs, `
Reads records of one shard once and prints them (shard, sequence number, arrival time,
partition key, data; a KPL aggregated record as its user records, sequence number/sub-sequence
number, unless --raw), then "# next: AT_SEQUENCE_NUMBER N" where the next read starts, or
"# shard end" with the shard's children.`)
	if _, status, stop := parseVerbFlags(fs, sf, args, 0); stop {
		return status
	}
	if in.Limit < 1 || in.Limit > 10000 {
		fmt.Fprintf(stderr, "sluice get: --limit %d: want 1 to 10000\n", in.Limit)
		return exitUsage
	}
	in.Stream = sf.stream
	c, status, ok := sf.newClient("get", stderr)
	if !ok {
		return status
	}
	defer c.Close()
	res, err := cli.Get(context.Background(), c, in)
	if err == nil {
		err = res.Write(cli.Output{W: stdout, JSON: sf.json})
	}
	if err != nil {
		return sf.fail("get", stderr, err)
	}
	return exitOK
}
