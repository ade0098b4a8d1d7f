package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/sluice-streams/sluice/tools/cli"
)

// runTail follows a whole stream until SIGINT or SIGTERM (status 0), or --max-records.
func runTail(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", "--stream S [--from trim-horizon|latest|TIME] [--fan-out shared|enhanced --consumer-name N]", stderr)
	sf := addStreamFlags(fs)
	var in cli.TailInput
	fs.StringVar(&in.From, "from", "trim-horizon", "where to start (`position`): trim-horizon, latest, or a time (RFC 3339 or Unix seconds)")
	fs.StringVar(&in.FanOut, "fan-out", "shared", "how to read (`mode`): shared (polling gets) or enhanced (pushed, needs --consumer-name)")
	fs.StringVar(&in.ConsumerName, "consumer-name", "", "enhanced fan-out consumer `name`, registered if new (and left registered)")
	fs.IntVar(&in.MaxRecords, "max-records", 0, "stop after printing this many `records` (0: never)")
	fs.BoolVar(&in.Raw, "raw", false, "print KPL aggregated records as stored, not as their user records")
	withDescription(fs, `
Follows every shard of the stream, as tail -f follows a file, printing each record as it
arrives (shard, sequence number, arrival time, partition key, data). A shard's children
are read once it has been read to its end, so each key's records print in order across
splits and merges. Ctrl-C stops.`)
	if _, status, stop := parseVerbFlags(fs, sf, args, 0); stop {
		return status
	}
	in.Stream = sf.stream
	c, status, ok := sf.newClient("tail", stderr)
	if !ok {
		return status
	}
	defer c.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if _, err := cli.Tail(ctx, c, in, cli.Output{W: stdout, JSON: sf.json}); err != nil {
		return sf.fail("tail", stderr, err)
	}
	return exitOK
}
