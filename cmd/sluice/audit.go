package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluice-streams/sluice/audit"
)

// runAudit runs `sluice audit verify DIR`: exit 0 and a summary if the log in DIR is as
// written, 1 and the first damaged place (file:line: why) if not.
func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("audit", "verify DIR", stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 2 || fs.Arg(0) != "verify" {
		fs.Usage()
		return exitUsage
	}
	dir := fs.Arg(1)
	sum, err := audit.Verify(dir)
	var d *audit.Damage
	switch {
	case errors.As(err, &d):
		fmt.Fprintf(stderr, "sluice audit verify: %s: damaged at %v\n", dir, d)
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "sluice audit verify: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "%s: intact: %d files, %d lines", dir, sum.Files, sum.Lines)
	if sum.Lines > 0 {
		fmt.Fprintf(stdout, ", %s to %s, last line sha256 %s", sum.FirstTime, sum.LastTime, sum.Head)
	}
	fmt.Fprintln(stdout)
	if sum.AfterAnchor > 0 {
		fmt.Fprintf(stdout, "%s: the last %d lines follow the anchor: written just before a crash (the server anchors them at its next start) or appended by hand; the chain checks them, the anchor does not\n", dir, sum.AfterAnchor)
	}
	return exitOK
}
