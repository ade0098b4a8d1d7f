package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Summary describes an intact log.
type Summary struct {
	Files, Lines int
	// FirstTime and LastTime are the eventTime of the first and the last line; "" if the
	// log has no line.
	FirstTime, LastTime string
	// Head is the hex SHA-256 of the last line. The chain protects every line but the last
	// against an edit; the anchor file (AnchorName) protects the last line and the end of the
	// log, against anyone who does not rewrite the anchor too: a Head recorded elsewhere
	// anchors the log up to that line against them as well.
	Head string
	// AfterAnchor counts the lines after the one the anchor names: lines synced just before
	// a crash that came before the anchor's update (the writer anchors them at its next
	// start), or lines appended by someone else. The chain checks them; the anchor does not.
	AfterAnchor int
}

// maxLine bounds the length of a line Verify reads.
const maxLine = 64 << 20

// lineHead is what Verify reads of a line.
type lineHead struct {
	Prev      string  `json:"previousLineSha256"`
	Seq       *uint64 `json:"sequence"`
	EventTime string  `json:"eventTime"`
}

// line is one line of the log as Verify reads it.
type line struct {
	file string
	n    int    // 1-based, within file
	raw  []byte // without '\n'
	head lineHead
	sum  [32]byte // SHA-256 of raw
}

// Verify checks the audit log in dir: the files' names follow from one another, every line
// is complete JSON, its sequence follows the previous line's and its previousLineSha256 is
// the hash of the previous line. It returns a *Damage naming the first line or file that
// is not as written: an edited line (its own number: a line edited in place breaks the
// chain at the line after it, which Verify tells from a removal by the sequence numbers),
// the place where lines were removed or reordered, a removed, renamed or reordered file, a
// cut last line. Another error means the directory could not be read.
//
// The anchor is read first, so that a log being written is verified up to a line that its
// writer had anchored: lines written afterwards count in AfterAnchor. A missing or damaged
// anchor, an anchor naming a line after the end of the log (lines or files removed from the
// end), or naming a line with another hash (an edit of the last line) is damage too.
func Verify(dir string) (Summary, error) {
	a, aerr := readAnchor(dir)
	names, firsts, err := listFiles(dir)
	if err != nil {
		return Summary{}, err
	}
	v := verifier{dir: dir, names: names}
	var sum Summary
	sum.Files = len(names)
	var prev *line // the previous line; nil before the first
	want := uint64(1)
	for i, name := range names {
		if firsts[i] != want {
			return sum, fileDamage(name, firsts[i], want)
		}
		if err := v.open(i); err != nil {
			return sum, err
		}
		first := true
		for {
			l, err := v.next()
			if err != nil {
				return sum, err
			}
			if l == nil || l.file != name {
				v.unread(l)
				break
			}
			if first && *l.head.Seq != firsts[i] {
				// The name does not match the content: files were renamed.
				return sum, &Damage{File: name, Line: 1, Reason: fmt.Sprintf("the file's first line has sequence %d, its name says %d: files were renamed or reordered", *l.head.Seq, firsts[i])}
			}
			first = false
			if d := v.check(prev, l, want); d != nil {
				return sum, d
			}
			if sum.Lines == 0 {
				sum.FirstTime = l.head.EventTime
			}
			sum.Lines++
			sum.LastTime = l.head.EventTime
			prev, want = l, want+1
		}
	}
	if prev != nil {
		sum.Head = hex.EncodeToString(prev.sum[:])
	}
	return sum, checkAnchor(&sum, prev, a, aerr)
}

// checkAnchor compares the anchor read before the lines (a, or the error of reading it)
// with the log's last line, prev (nil: no line), and counts the lines after the anchor.
// The hash of an anchored line before the last is not compared: the chain checked it.
func checkAnchor(sum *Summary, prev *line, a anchor, aerr error) error {
	last := uint64(0)
	if prev != nil {
		last = *prev.head.Seq
	}
	switch {
	case errors.Is(aerr, errNoAnchor) && last == 0:
		return nil
	case errors.Is(aerr, errNoAnchor):
		return &Damage{File: AnchorName, Reason: "the anchor file is missing: the last line and the end of the log cannot be checked (the server writes it at every sync, and at its start for a log written before it existed)"}
	case aerr != nil:
		return &Damage{File: AnchorName, Reason: aerr.Error()}
	case a.seq > last:
		file := AnchorName
		if prev != nil {
			file = prev.file
		}
		return &Damage{File: file, Reason: fmt.Sprintf("lines %d to %d are missing at the end of the log: the anchor records line %d", last+1, a.seq, a.seq)}
	case a.seq == last && a.sum != prev.sum:
		return &Damage{File: prev.file, Line: prev.n, Reason: "the line was edited: its SHA-256 is not the one the anchor records"}
	}
	sum.AfterAnchor = int(last - a.seq)
	return nil
}

// fileDamage describes a file whose name does not carry the sequence expected next.
func fileDamage(name string, first, want uint64) *Damage {
	if first > want {
		return &Damage{File: name, Reason: fmt.Sprintf("lines %d to %d are missing before this file: a file or the lines ending the file before were removed", want, first-1)}
	}
	return &Damage{File: name, Reason: fmt.Sprintf("the file starts at sequence %d, but sequence %d was expected: files were reordered or copied", first, want)}
}

// check reports whether l follows prev as written, or the Damage that says why not. It may
// read the line after l to tell an edit of prev from an edit of l.
func (v *verifier) check(prev, l *line, want uint64) *Damage {
	wantPrev := hex.EncodeToString(make([]byte, 32))
	if prev != nil {
		wantPrev = hex.EncodeToString(prev.sum[:])
	}
	chained := l.head.Prev == wantPrev
	seq := *l.head.Seq
	switch {
	case seq == want && chained:
		return nil
	case seq != want && chained:
		// The line follows its predecessor, so only its own number changed.
		return &Damage{File: l.file, Line: l.n, Reason: fmt.Sprintf("the line was edited: its sequence is %d where %d was expected, yet it chains to the line before it", seq, want)}
	case seq > want:
		next, _ := v.peek()
		if next != nil && *next.head.Seq == want {
			return &Damage{File: l.file, Line: l.n, Reason: fmt.Sprintf("lines are out of order: sequence %d is here, sequence %d follows it", seq, want)}
		}
		return &Damage{File: l.file, Line: l.n, Reason: fmt.Sprintf("%d line(s) are missing before this line (sequence %d where %d was expected)", seq-want, seq, want)}
	case seq < want:
		return &Damage{File: l.file, Line: l.n, Reason: fmt.Sprintf("lines are out of order or repeated: sequence %d where %d was expected", seq, want)}
	}
	// The numbers follow, the hash does not: either prev was edited, or l's own
	// previousLineSha256. An edit of l changes l's hash too, which the next line then
	// disowns; an edit of prev leaves l's hash as the next line recorded it.
	next, _ := v.peek()
	if prev != nil && next != nil && next.head.Prev == hex.EncodeToString(l.sum[:]) {
		return &Damage{File: prev.file, Line: prev.n, Reason: "the line was edited: the next line's previousLineSha256 does not match it"}
	}
	if next == nil && prev != nil {
		return &Damage{File: l.file, Line: l.n, Reason: fmt.Sprintf("this line or the one before it (%s:%d) was edited: its previousLineSha256 does not match that line", prev.file, prev.n)}
	}
	return &Damage{File: l.file, Line: l.n, Reason: "the line was edited: its previousLineSha256 does not match the line before it"}
}

// verifier reads the lines of the log's files in order, with one line of lookahead.
type verifier struct {
	dir    string
	names  []string
	file   int // index in names of the file r reads
	r      *bufio.Reader
	f      *os.File
	n      int   // lines read from the file
	peeked *line // a line read ahead, or nil
	ahead  bool  // peeked holds the next line (nil at the end of the log)
	err    error // the error of reading ahead
}

// open starts reading file i, unless the reader is there already (it reads ahead across
// files).
func (v *verifier) open(i int) error {
	if v.f != nil && v.file == i {
		return nil
	}
	return v.openFile(i)
}

func (v *verifier) openFile(i int) error {
	if v.f != nil {
		v.f.Close()
	}
	f, err := os.Open(filepath.Join(v.dir, v.names[i]))
	if err != nil {
		return err
	}
	v.f, v.file, v.n, v.r = f, i, 0, bufio.NewReaderSize(f, 1<<20)
	return nil
}

// next returns the next line of the log, nil at its end, or the Damage of a line that is not
// a complete audit line.
func (v *verifier) next() (*line, error) {
	if v.ahead {
		v.ahead = false
		l, err := v.peeked, v.err
		v.peeked, v.err = nil, nil
		return l, err
	}
	return v.read()
}

// unread puts back a line returned by next.
func (v *verifier) unread(l *line) { v.peeked, v.err, v.ahead = l, nil, true }

// peek returns the line next would return, without taking it.
func (v *verifier) peek() (*line, error) {
	if !v.ahead {
		v.peeked, v.err = v.read()
		v.ahead = true
	}
	return v.peeked, v.err
}

func (v *verifier) read() (*line, error) {
	for {
		if v.f == nil {
			return nil, nil
		}
		raw, err := v.r.ReadSlice('\n')
		var buf []byte
		for errors.Is(err, bufio.ErrBufferFull) && len(buf)+len(raw) < maxLine {
			buf = append(buf, raw...)
			raw, err = v.r.ReadSlice('\n')
		}
		if buf != nil {
			raw = append(buf, raw...)
		}
		name := v.names[v.file]
		if err == io.EOF && len(raw) == 0 {
			if v.file+1 == len(v.names) {
				v.f.Close()
				v.f = nil
				return nil, nil
			}
			if err := v.openFile(v.file + 1); err != nil {
				return nil, err
			}
			continue
		}
		v.n++
		switch {
		case err == io.EOF:
			return nil, &Damage{File: name, Line: v.n, Reason: "the line is cut short: the file ends without its newline"}
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, &Damage{File: name, Line: v.n, Reason: fmt.Sprintf("the line is longer than %d bytes", maxLine)}
		case err != nil:
			return nil, err
		}
		l := &line{file: name, n: v.n, raw: bytes.Clone(raw[:len(raw)-1])}
		if err := json.Unmarshal(l.raw, &l.head); err != nil || l.head.Seq == nil || len(l.head.Prev) != 64 {
			return nil, &Damage{File: name, Line: v.n, Reason: "the line is not an audit line (edited or cut)"}
		}
		l.sum = sha256.Sum256(l.raw)
		return l, nil
	}
}
