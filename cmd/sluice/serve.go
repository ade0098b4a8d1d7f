package main

import (
	"fmt"
	"io"
	"net"

	"github.com/sluice-streams/sluice/segment"
)

// serveConfig is what `sluice serve` was asked to do.
type serveConfig struct {
	addr       string
	dataDir    string
	durability segment.Durability
}

// runServe parses the server's flags. The Kinesis API front door (package server) is not
// built yet, so after validating them it says so and fails rather than pretend to serve.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", stderr)
	addr := fs.String("addr", "127.0.0.1:4567", "`host:port` to listen on (Kinesis API)")
	dataDir := fs.String("data-dir", "./data", "`directory` holding the streams' segment logs")
	durability := fs.String("durability", "sync", "acknowledgement `mode`: sync, interval=T (such as interval=200ms) or none; see README.md")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	cfg, err := newServeConfig(*addr, *dataDir, *durability)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	// The configuration goes to the server once it exists; until then, say what is missing.
	fmt.Fprintf(stderr, "sluice serve: the Kinesis API front door is not built yet (this build has the storage engine only); nothing listens on %s\n", cfg.addr)
	return exitUsage
}

func newServeConfig(addr, dataDir, durability string) (serveConfig, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return serveConfig{}, fmt.Errorf("--addr %q: %v", addr, err)
	}
	if dataDir == "" {
		return serveConfig{}, fmt.Errorf("--data-dir must not be empty")
	}
	d, err := segment.ParseDurability(durability)
	if err != nil {
		return serveConfig{}, fmt.Errorf("--durability: %v", err)
	}
	return serveConfig{addr: addr, dataDir: dataDir, durability: d}, nil
}
