package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/tools/cli"
)

// The stream verbs (put, get, tail, describe) share these flags and helpers; their logic
// and output formats are package cli's.

// endpointEnv overrides the default of --endpoint.
const endpointEnv = "SLUICE_ENDPOINT"

// streamFlags are the flags every stream verb takes.
type streamFlags struct {
	endpoint string
	stream   string
	json     bool
}

func addStreamFlags(fs *flag.FlagSet) *streamFlags {
	f := &streamFlags{}
	def := os.Getenv(endpointEnv)
	if def == "" {
		def = client.DefaultEndpoint
	}
	fs.StringVar(&f.endpoint, "endpoint", def, "server `URL`; "+endpointEnv+" sets the default")
	fs.StringVar(&f.stream, "stream", "", "stream `name` (required)")
	fs.BoolVar(&f.json, "json", false, "print JSON in the shapes of the Kinesis API")
	return f
}

// withDescription makes fs's usage end with text, a paragraph about the verb.
func withDescription(fs *flag.FlagSet, text string) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintln(fs.Output())
		fmt.Fprintln(fs.Output(), strings.TrimSpace(text))
	}
}

// parseVerbFlags parses args with fs, taking up to maxArgs arguments that are not flags,
// before, between or after the flags ("--" ends the flags). It returns them, or the exit
// status to use if the command must stop: exitOK after -h, exitUsage after a bad flag, too
// many arguments or a missing --stream.
func parseVerbFlags(fs *flag.FlagSet, f *streamFlags, args []string, maxArgs int) (pos []string, status int, stop bool) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, exitOK, true
			}
			return nil, exitUsage, true // the flag package has printed the error and the usage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	pos = append(pos, rest...)
	if len(pos) > maxArgs {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), pos[maxArgs:])
		fs.Usage()
		return nil, exitUsage, true
	}
	if f.stream == "" {
		fmt.Fprintf(fs.Output(), "%s: --stream is required\n", fs.Name())
		fs.Usage()
		return nil, exitUsage, true
	}
	return pos, exitOK, false
}

// newClient returns a client for --endpoint that logs its warnings (retries) to stderr.
func (f *streamFlags) newClient(name string, stderr io.Writer) (*client.Client, int, bool) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.New(client.Config{Endpoint: f.endpoint, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "sluice %s: --endpoint: %v\n", name, err)
		return nil, exitUsage, false
	}
	return c, exitOK, true
}

// fail reports err of a verb and returns its exit status: exitUsage for input refused
// before any request, exitError for the rest.
func (f *streamFlags) fail(name string, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "sluice %s: %s\n", name, cli.Message(err, f.endpoint))
	if errors.Is(err, cli.ErrInput) {
		return exitUsage
	}
	return exitError
}
