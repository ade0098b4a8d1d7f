// Package inspect is `sluice inspect`: it checks the segment and index files of shard logs
// offline, without changing them, and prints what it found and where.
package inspect

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/sluice-streams/sluice/segment"
)

// Run executes `sluice inspect [-q] DIR...`. Each DIR is a shard log directory, or a tree
// searched for them (any directory holding a log.meta or *.seg file). The status is 0 when
// every segment is intact, 1 when damage was found, 2 on a usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print damaged segments only")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice inspect [-q] DIR...")
		fmt.Fprintln(stderr, "Checks every segment (header, checkpoints, each frame's CRC, order, seal) and index file.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	damaged := false
	for _, root := range fs.Args() {
		dirs, err := logDirs(root)
		if err != nil {
			fmt.Fprintf(stderr, "sluice inspect: %v\n", err)
			return 1
		}
		if len(dirs) == 0 {
			fmt.Fprintf(stderr, "sluice inspect: no shard log under %s\n", root)
			damaged = true
		}
		for _, dir := range dirs {
			bad, err := inspectDir(dir, *quiet, stdout)
			if err != nil {
				fmt.Fprintf(stderr, "sluice inspect: %s: %v\n", dir, err)
				return 1
			}
			damaged = damaged || bad
		}
	}
	if damaged {
		return 1
	}
	return 0
}

func logDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		has, _ := filepath.Glob(filepath.Join(path, "*.seg"))
		if _, statErr := os.Stat(filepath.Join(path, "log.meta")); statErr == nil || len(has) > 0 {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs, err
}

func inspectDir(dir string, quiet bool, out io.Writer) (damaged bool, err error) {
	reps, err := segment.Verify(dir)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(out, "%s: %d segments\n", dir, len(reps))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  id\tbase\tstate\trecords\tfirst\tlast\tend\tindex\tproblem")
	for _, r := range reps {
		if r.Problem != "" {
			damaged = true
		} else if quiet {
			continue
		}
		state := "active"
		if r.Sealed {
			state = "sealed"
		}
		problem := r.Problem
		if problem == "" {
			problem = "-"
		}
		idx := r.Index
		if idx == "" {
			idx = "-"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Base, state, r.Records, r.First, r.Last, r.End, idx, problem)
	}
	return damaged, tw.Flush()
}
