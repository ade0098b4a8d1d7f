package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/tools/agent"
)

// runAgent sends the lines of files to streams as the Kinesis Agent does, until SIGINT or
// SIGTERM (status 0); the agent is package agent's.
func runAgent(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("agent", "--config FILE [flags]", stderr)
	endpoint := fs.String("endpoint", "", "server `URL`; default: "+endpointEnv+", else the file's kinesis.endpoint, else "+client.DefaultEndpoint)
	configFile := fs.String("config", "", "the Kinesis Agent's configuration `file` (agent.json) (required)")
	checkpoint := fs.String("checkpoint", "", "`file` keeping the progress; default: the file's checkpointFile, else the configuration file's path + .checkpoint")
	metrics := fs.String("metrics-addr", "", "serve the progress in the Prometheus format on http://`addr`/metrics")
	every := fs.Duration("progress-interval", 30*time.Second, "how often the progress is logged")
	withDescription(fs, `
Reads a Kinesis Agent configuration file as it is (flows with filePattern, kinesisStream,
partitionKeyOption, initialPosition, multiLineStartPattern, skipHeaderLines,
truncatedRecordTerminator, the buffer limits and dataProcessingOptions) and sends every
line of the matching files to the streams, following rotation (rename and copy-truncate),
truncation and new files. After a crash, even kill -9, no line is lost and none is sent
twice: see the package documentation of tools/agent for the exact promise. Credentials come
from the AWS variables and files, or the file's awsAccessKeyId and awsSecretAccessKey.
Ctrl-C stops.`)
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice agent: "+format+"\n", a...)
		return exitUsage
	}
	if *configFile == "" {
		return usageErr("--config is required")
	}
	if *every <= 0 {
		return usageErr("--progress-interval must be positive")
	}
	b, err := os.ReadFile(*configFile)
	if err != nil {
		return usageErr("%v", err)
	}
	cfg, warnings, err := agent.ParseConfig(b)
	if err != nil {
		return usageErr("%s: %v", *configFile, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "sluice agent: %s: %s\n", *configFile, w)
	}
	if *checkpoint == "" {
		*checkpoint = cfg.CheckpointFile
	}
	if *checkpoint == "" {
		*checkpoint = *configFile + ".checkpoint"
	}
	ep := *endpoint
	for _, v := range []string{os.Getenv(endpointEnv), cfg.Endpoint, client.DefaultEndpoint} {
		if ep == "" {
			ep = v
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ccfg := client.Config{Endpoint: ep, Logger: logger}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		ccfg.Credentials = &client.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey}
	}
	c, err := client.New(ccfg)
	if err != nil {
		return usageErr("endpoint: %v", err)
	}
	defer c.Close()
	a, err := agent.New(c, agent.Options{Config: cfg, CheckpointFile: *checkpoint, Logger: logger, ProgressInterval: *every})
	if err != nil {
		fmt.Fprintf(stderr, "sluice agent: %v\n", err)
		if errors.Is(err, agent.ErrConfig) {
			return exitUsage
		}
		return exitError
	}
	if *metrics != "" {
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			return usageErr("--metrics-addr: %v", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			a.WriteMetrics(w)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stdout, "sluice agent: metrics on http://%s/metrics\n", ln.Addr())
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(stdout, "sluice agent: %d flows to %s, checkpoint %s\n", len(cfg.Flows), ep, *checkpoint)
	start := time.Now()
	err = a.Run(ctx)
	var lines, sent int64
	for _, s := range a.Stats() {
		lines, sent = lines+s.LinesRead, sent+s.RecordsSent
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "sluice agent: %d lines read, %d records sent (%.0f lines/s)\n", lines, sent, float64(lines)/secs)
	if err != nil {
		fmt.Fprintf(stderr, "sluice agent: %v\n", err)
		return exitError
	}
	return exitOK
}
