// Command sluice is the one sluice binary: the server and the tools, as subcommands.
//
//	sluice serve [flags]     run the server
//	sluice cluster VERB      status, drain, undrain, rebalance of a cluster's nodes
//	sluice put [flags]       append DATA, or one record per line of stdin
//	sluice describe [flags]  show a stream, its shards and consumers
//	sluice get [flags]       read one shard once, from an iterator type
//	sluice tail [flags]      follow every shard of a stream as records arrive
//	sluice inspect DIR...    check segment and index files offline
//	sluice backup DIR DEST   copy a data directory, even a served one, into a new one
//	sluice audit verify DIR  check an audit log's SHA-256 chain
//	sluice estimate [flags]  size a Kinesis stream and price it a month on AWS
//	sluice load [flags]      generate load, measure latency, verify every record was read
//	sluice lambda [flags]    run a Lambda function's handler against a stream
//	sluice agent [flags]     send the lines of files to streams, as the Kinesis Agent does
//	sluice deliver [flags]   deliver a stream to S3 or a directory, as Firehose does
//	sluice version           print the build's module versions
//	sluice help [command]    list the commands, or describe one
//
// Each subcommand parses its own flags with a flag.FlagSet. A new subcommand is one entry
// in commands and a function with the signature of command.run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sluice-streams/sluice/tools/backup"
	"github.com/sluice-streams/sluice/tools/inspect"
)

// Exit statuses, as the flag package uses them.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // bad command line, or a command that cannot run in this build
)

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the arguments, for help
	summary string
	// run executes the command with the arguments after its name and returns the process
	// exit status. stdout gets the command's output, stderr diagnostics and usage.
	run func(args []string, stdout, stderr io.Writer) int
}

// commands returns the subcommands in the order help lists them. (A function rather than a
// variable: help refers to the list, and a variable would be an initialisation cycle.)
func commands() []command {
	return []command{
		{name: "serve", args: "[flags]", summary: "run the server (Kinesis API on HTTP)", run: runServe},
		{name: "dev-cluster", args: "--nodes N --data-dir DIR", summary: "run an embedded etcd and N serve processes joined to it, on loopback", run: runDevCluster},
		{name: "cluster", args: "status|drain|undrain|rebalance --cluster-etcd URL", summary: "show a cluster's nodes and placement; drain, undrain or rebalance nodes", run: runCluster},
		{name: "put", args: "--stream S [DATA]", summary: "append a record, or one per line of stdin", run: runPut},
		{name: "describe", args: "--stream S", summary: "show a stream, its shards and its consumers", run: runDescribe},
		{name: "get", args: "--stream S --shard-id ID", summary: "read one shard once, from an iterator type", run: runGet},
		{name: "tail", args: "--stream S", summary: "follow every shard of a stream, printing records as they arrive", run: runTail},
		{name: "inspect", args: "[-q] [-records] DIR...", summary: "check segment and index files offline and report damage; -records dumps them", run: inspect.Run},
		{name: "backup", args: "[--kms-keyring DIR] DATA_DIR DEST", summary: "copy a data directory, while a server runs on it or not, into a new directory serve starts from", run: backup.Run},
		{name: "audit", args: "verify DIR", summary: "check an audit log's chain: name the first line edited, removed or reordered", run: runAudit},
		{name: "create-key", args: "(--kms-keyring DIR | --cluster-etcd URL) [--alias alias/NAME]", summary: "add a master key for StartStreamEncryption to a keyring and print its id", run: runCreateKey},
		{name: "rotate-key", args: "(--kms-keyring DIR | --cluster-etcd URL) KEY-ID", summary: "add a new version of a master key: new data keys are wrapped by it, old ones still open", run: runRotateKey},
		{name: "estimate", args: "[flags]", summary: "size a Kinesis stream and price it a month on AWS", run: runEstimate},
		{name: "load", args: "[flags]", summary: "put and read back records at a rate: throughput, latency, losses", run: runLoad},
		{name: "lambda", args: "--handler PATH --event-source-mapping FILE", summary: "run an unmodified Lambda function against a stream, as an event source mapping does", run: runLambda},
		{name: "agent", args: "--config FILE", summary: "send the lines of files to streams, as the Kinesis Agent does, reading its agent.json", run: runAgent},
		{name: "deliver", args: "--config FILE [--s3-endpoint URL]", summary: "deliver a stream to S3 or a directory, as a Firehose delivery stream does", run: runDeliver},
		{name: "version", summary: "print the module versions this binary was built from", run: runVersion},
		{name: "help", args: "[command]", summary: "list the commands, or describe one", run: runHelp},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to the subcommand named by args[0].
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "sluice is a streaming log server with Amazon Kinesis Data Streams semantics.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: sluice <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "sluice help <command>" for a command's flags.`)
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return exitOK
	case 1:
		c, ok := lookup(args[0])
		if !ok {
			fmt.Fprintf(stderr, "sluice help: unknown command %q\n", args[0])
			return exitUsage
		}
		// Every command answers -h with its usage on stdout and status 0.
		return c.run([]string{"-h"}, stdout, stdout)
	default:
		fmt.Fprintln(stderr, "usage: sluice help [command]")
		return exitUsage
	}
}

// newFlagSet returns a FlagSet for a subcommand that reports errors instead of exiting and
// prints its usage to w.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, strings.TrimSpace("Usage: sluice "+name+" "+synopsis))
		if hasFlags(fs) {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "Flags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args with fs and returns the exit status to use if the command must
// stop: exitOK after -h, exitUsage after a bad flag or stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) (status int, stop bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, true
		}
		return exitUsage, true // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		fs.Usage()
		return exitUsage, true
	}
	return exitOK, false
}
