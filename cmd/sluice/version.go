package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"
)

// runVersion prints the main module's version, the Go version and the dependencies
// compiled into the binary, from the build information the linker embeds.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stderr, "sluice version: no build information in this binary")
		return exitError
	}
	writeVersion(stdout, bi)
	return exitOK
}

func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\n", bi.Main.Path, bi.Main.Version)
	fmt.Fprintf(tw, "go\t%s\n", bi.GoVersion)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH", "-race":
			fmt.Fprintf(tw, "%s\t%s\n", s.Key, s.Value)
		}
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		fmt.Fprintf(tw, "dep %s\t%s\n", d.Path, v)
	}
	tw.Flush()
}
