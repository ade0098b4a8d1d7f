package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/tools/deliver"
)

// runDeliver delivers a stream to S3 or a directory as a Firehose delivery stream would,
// until SIGINT or SIGTERM (status 0, after storing what is buffered); the delivery is
// package deliver's.
func runDeliver(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("deliver", "--config FILE [--s3-endpoint URL] [flags]", stderr)
	def := os.Getenv(endpointEnv)
	if def == "" {
		def = client.DefaultEndpoint
	}
	endpoint := fs.String("endpoint", def, "server `URL`; "+endpointEnv+" sets the default")
	configFile := fs.String("config", "", "`file` holding the JSON of a CreateDeliveryStream request (required)")
	s3Endpoint := fs.String("s3-endpoint", "", "`URL` of an S3-compatible service, reached with path-style requests; default: AWS's S3 in AWS_REGION")
	checkpoint := fs.String("checkpoint", "", "`file` keeping the progress; default: the config file's path + .checkpoint")
	startAt := fs.String("starting-position", "LATEST", "where a shard without a checkpoint starts: LATEST (as Firehose) or TRIM_HORIZON")
	prof := fs.String("profile", "", profileUsage)
	withDescription(fs, `
Reads every shard of the configured stream (children after their parents, KPL records
de-aggregated) and stores its records as objects, as a Firehose delivery stream with a
Kinesis source and an extended S3 destination does: Prefix and ErrorOutputPrefix with
!{timestamp:…} and !{firehose:…} expressions, BufferingHints, CompressionFormat
(UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY) and the AppendDelimiterToRecord processor.
BucketARN is arn:aws:s3:::BUCKET, or file://DIR for a local directory. S3 requests are
signed with the credentials of AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the shared
credentials file, in AWS_REGION. Progress is kept in the checkpoint file; a restart, even
after kill -9, stores every record exactly once (an object's key is derived from its
first record, so a retried object replaces itself). Ctrl-C stores what is buffered and
stops. Shards are read with shared-throughput gets, so a server under its default --limits
kinesis lets each shard be read at 2 MiB/s at most; serve with --limits off for more.`)
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice deliver: "+format+"\n", a...)
		return exitUsage
	}
	stopProfile, ok := startProfile("deliver", *prof, stderr)
	if !ok {
		return exitUsage
	}
	defer stopProfile()
	if *configFile == "" {
		return usageErr("--config is required")
	}
	var start client.Start
	switch *startAt {
	case "LATEST":
		start = client.Latest
	case "TRIM_HORIZON":
		start = client.TrimHorizon
	default:
		return usageErr("--starting-position %q: want LATEST or TRIM_HORIZON", *startAt)
	}
	b, err := os.ReadFile(*configFile)
	if err != nil {
		return usageErr("%v", err)
	}
	cfg, warnings, err := deliver.ParseConfig(b)
	if err != nil {
		return usageErr("%s: %v", *configFile, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "sluice deliver: %s: %s\n", *configFile, w)
	}
	if *checkpoint == "" {
		*checkpoint = *configFile + ".checkpoint"
	}
	s3opts := deliver.S3Options{Endpoint: *s3Endpoint, Region: os.Getenv("AWS_REGION")}
	if s3opts.Region == "" {
		s3opts.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if cfg.Destination.Bucket != "" {
		creds, found, err := client.LoadCredentials(os.Getenv)
		if err != nil {
			return usageErr("%v", err)
		}
		if found {
			s3opts.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}, nil
			})
		}
	}
	store, err := deliver.OpenStore(cfg.Destination, s3opts)
	if err != nil {
		fmt.Fprintf(stderr, "sluice deliver: %v\n", err)
		return exitError
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.New(client.Config{Endpoint: *endpoint, Logger: logger})
	if err != nil {
		return usageErr("--endpoint: %v", err)
	}
	defer c.Close()
	d, err := deliver.New(c, deliver.Options{Config: cfg, Store: store, CheckpointFile: *checkpoint, Start: start, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "sluice deliver: %v\n", err)
		return exitError
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(stdout, "sluice deliver: %s from %s to %s\n", cfg.Name, cfg.StreamARN, destinationName(cfg.Destination))
	begin := time.Now()
	err = d.Run(ctx)
	st := d.Stats()
	// The rate is over the time until the last object was stored, not until the signal:
	// the time the delivery then waited for records is not its speed.
	secs := time.Since(begin).Seconds()
	if !st.LastStored.IsZero() {
		secs = st.LastStored.Sub(begin).Seconds()
	}
	fmt.Fprintf(stdout, "sluice deliver: %d objects, %d records, %.1f MB in %.1f s (%.1f MB/s), %.1f MB stored; %d records failed processing in %d error objects\n",
		st.Objects, st.Records, float64(st.Bytes)/1e6, secs, float64(st.Bytes)/1e6/secs, float64(st.StoredBytes)/1e6, st.ErrorRecords, st.ErrorObjects)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "sluice deliver: %v\n", err)
		return exitError
	}
	return exitOK
}

// destinationName is how the first line names where objects go.
func destinationName(d deliver.Destination) string {
	if d.Dir != "" {
		return "directory " + d.Dir
	}
	return "s3://" + d.Bucket
}
