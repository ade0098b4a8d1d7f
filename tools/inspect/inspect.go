// Package inspect is `sluice inspect`: it checks the segment and index files of shard logs
// offline, without changing them, and prints what it found and where.
package inspect

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/dirlock"
	"github.com/sluice-streams/sluice/segment"
)

// Run executes `sluice inspect [-q] [-records] DIR...`. Each DIR is a shard log directory, or a tree
// searched for them (any directory holding a log.meta or *.seg file). The status is 0 when
// every segment is intact, 1 when damage was found, 2 on a usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print damaged segments only")
	records := fs.Bool("records", false, "also dump every intact record: sequence number, arrival time, partition key, size and the start of the data")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice inspect [-q] [-records] DIR...")
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
		// A server writing the directory would change what is read under our feet: take
		// the data directory's lock shared, which a running server refuses.
		lock, err := lockDataDir(root)
		if err != nil {
			fmt.Fprintf(stderr, "sluice inspect: %v; stop the server or inspect a copy\n", err)
			return 1
		}
		defer lock.Release()
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
			bad, err := inspectDir(dir, *quiet, *records, stdout)
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

// lockDataDir takes shared the lock of the data directory that holds root: the nearest of
// root and its parents with a lock file (internal/dirlock). A tree without one (a copied
// shard log) needs none.
func lockDataDir(root string) (*dirlock.Lock, error) {
	dir, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, dirlock.FileName)); err == nil {
			return dirlock.Acquire(dir, false, "sluice inspect")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, nil
		}
		dir = parent
	}
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

func inspectDir(dir string, quiet, records bool, out io.Writer) (damaged bool, err error) {
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
	if err := tw.Flush(); err != nil || !records {
		return damaged, err
	}
	for _, r := range reps {
		if err := dumpRecords(r, out); err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}

// dumpRecords prints the intact records of a segment: the frames from the data offset up to
// the end Verify found, read from the file without changing it.
func dumpRecords(r segment.SegmentReport, out io.Writer) error {
	b, err := os.ReadFile(r.Path)
	if err != nil {
		return err
	}
	end := min(int64(len(b)), r.End)
	if end <= segment.DataOffset {
		return nil
	}
	fmt.Fprintf(out, "%s:\n", r.Path)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  seq\tarrival\tkey\tbytes\tdata")
	for off := int64(segment.DataOffset); off < end; {
		rec, n, err := frame.Decode(b[off:end])
		if err != nil || n == 0 {
			break // Verify has reported it
		}
		fmt.Fprintf(tw, "  %d\t%s\t%q\t%d\t%s\n", rec.Seq, time.Unix(0, rec.Time).UTC().Format("2006-01-02T15:04:05.000Z"),
			rec.Key, len(rec.Data), preview(rec.Data))
		off += int64(n)
	}
	return tw.Flush()
}

// preview shows the start of a record's data: as quoted text when it is printable UTF-8,
// else in hex.
func preview(data []byte) string {
	const max = 32
	more := ""
	if len(data) > max {
		data, more = data[:max], "…"
	}
	if utf8.Valid(data) && !strings.ContainsFunc(string(data), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(string(data)) + more
	}
	return "hex:" + hex.EncodeToString(data) + more
}
