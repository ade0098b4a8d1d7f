package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Defaults of Options.
const (
	DefaultMaxBytes = 64 << 20
	DefaultQueue    = 4096
)

// maxGroup bounds the lines one write(2) and fdatasync carry.
const maxGroup = 1024

// Options configure a Writer.
type Options struct {
	// MaxBytes is the size past which no file grows: the next line goes to a new file. A
	// single line larger than MaxBytes gets a file of its own. 0 means DefaultMaxBytes.
	MaxBytes int64
	// Queue is how many lines may wait for the writer; a Log that finds it full waits for
	// room. 0 means DefaultQueue.
	Queue  int
	Logger *slog.Logger
}

// Writer appends events to the audit log of one directory. Its methods may be called
// concurrently.
type Writer struct {
	dir      string
	maxBytes int64
	queue    chan entry
	log      *slog.Logger
	done     chan struct{} // closed when run returns

	// mu guards closed: Log holds it for reading while it queues, Close for writing while it
	// closes the queue, so that nothing is sent on a closed channel.
	mu     sync.RWMutex
	closed bool

	// err is the sticky write or sync error: written by run, read by Log and Err.
	err atomic.Pointer[error]

	// Owned by run once Open returns.
	f       *os.File // the file being written; nil before the first line of a file
	size    int64    // bytes in f
	seq     uint64   // sequence of the last line written; 0 before the first
	prev    [32]byte // SHA-256 of the last line written; zeros before the first
	pending []byte   // lines of the current group not yet written to f

	anchorFile *os.File // the anchor (anchor.go), opened at its first write
	anchorBuf  []byte
}

// entry is one line waiting for the writer: the event's members (encode) and, for a caller
// waiting for the sync, where to send its outcome.
type entry struct {
	body []byte
	done chan error // nil: nobody waits
}

// waiters are the channels of callers waiting for a sync: each gets exactly one value
// before it goes back to the pool.
var waiters = sync.Pool{New: func() any { return make(chan error, 1) }}

// filePrefix and fileSuffix frame a file's first sequence number in its name.
const (
	filePrefix = "audit-"
	fileSuffix = ".jsonl"
)

// fileName returns the name of the file whose first line has sequence seq.
func fileName(seq uint64) string {
	return fmt.Sprintf("%s%020d%s", filePrefix, seq, fileSuffix)
}

// parseFileName returns the first sequence number a file's name holds, and whether the name
// is an audit file's.
func parseFileName(name string) (uint64, bool) {
	if len(name) != len(filePrefix)+20+len(fileSuffix) || name[:len(filePrefix)] != filePrefix || name[len(filePrefix)+20:] != fileSuffix {
		return 0, false
	}
	n, err := strconv.ParseUint(name[len(filePrefix):len(filePrefix)+20], 10, 64)
	return n, err == nil
}

// listFiles returns the audit files of dir in order, with their first sequence numbers.
func listFiles(dir string) (names []string, firsts []uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents { // ReadDir sorts by name, which is sequence order
		if seq, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			names, firsts = append(names, e.Name()), append(firsts, seq)
		}
	}
	return names, firsts, nil
}

// Open returns a writer appending to the audit log in dir, creating dir if need be. The
// next line chains to the last line of the newest file and goes to a new file. A torn last
// line (bytes after the last '\n') is cut off and logged; a last line that is complete but
// not an audit line is an error: the log is damaged, and `sluice audit verify` tells where.
func Open(dir string, opts Options) (*Writer, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := &Writer{dir: dir, maxBytes: opts.MaxBytes, queue: make(chan entry, opts.Queue), log: opts.Logger,
		done: make(chan struct{})}
	if err := w.resume(); err != nil {
		return nil, err
	}
	go w.run()
	return w, nil
}

// resume finds the sequence number and hash of the last line written, repairing a torn
// tail, and checks them against the anchor. An empty file (created just before a crash) is
// removed. An anchor naming a line after the last one, or the last line with another hash,
// means lines were removed or edited since: the start fails, as `sluice audit verify` would.
// An anchor behind the last line (a crash between a group's sync and the anchor's) or none (a
// log written before the anchor existed) is brought up to the last line.
func (w *Writer) resume() error {
	names, _, err := listFiles(w.dir)
	if err != nil {
		return err
	}
	for i := len(names) - 1; i >= 0; i-- {
		path := filepath.Join(w.dir, names[i])
		line, err := repairTail(path, w.log)
		if err != nil {
			return err
		}
		if line == nil {
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		var h struct {
			Seq *uint64 `json:"sequence"`
		}
		if err := json.Unmarshal(line, &h); err != nil || h.Seq == nil {
			return fmt.Errorf("audit: %s: the last line is not an audit line; run sluice audit verify", path)
		}
		w.seq, w.prev = *h.Seq, sha256.Sum256(line)
		break
	}
	a, err := readAnchor(w.dir)
	switch {
	case errors.Is(err, errNoAnchor):
		if w.seq == 0 {
			return nil
		}
		w.log.Warn("audit log: no anchor file; anchoring the last line", "sequence", w.seq)
	case err != nil:
		return fmt.Errorf("audit: %s: %w; run sluice audit verify", w.dir, err)
	case a.seq > w.seq:
		return fmt.Errorf("audit: %s: the anchor records line %d but the log ends at line %d: lines were removed; run sluice audit verify", w.dir, a.seq, w.seq)
	case a.seq == w.seq && a.sum != w.prev:
		return fmt.Errorf("audit: %s: the last line (%d) does not match the anchor: it was edited; run sluice audit verify", w.dir, w.seq)
	case a.seq == w.seq:
		return nil
	default:
		w.log.Info("audit log: anchoring the lines written after the anchor before a crash", "from", a.seq, "to", w.seq)
	}
	return w.writeAnchor(anchor{seq: w.seq, sum: w.prev})
}

// repairTail returns the last complete line of the file at path, without its '\n', after
// cutting off the bytes that follow it; nil if the file holds no complete line.
func repairTail(path string, log *slog.Logger) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	line, end, err := lastLine(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	if end < st.Size() {
		log.Warn("audit log: cutting off a torn last line", "file", path, "bytes", st.Size()-end)
		if err := f.Truncate(end); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
	}
	return line, nil
}

// lastLine returns the last complete line of a file of size bytes, without its '\n', and
// the offset just past that '\n'; nil and 0 if no '\n' is found. It reads backwards from
// the end, 64 KiB at a time.
func lastLine(f *os.File, size int64) (line []byte, end int64, err error) {
	var tail []byte // the file's bytes from off to size
	off := size
	end = -1
	for off > 0 {
		n := min(off, 64<<10)
		off -= n
		chunk := make([]byte, n, n+int64(len(tail)))
		if _, err := f.ReadAt(chunk, off); err != nil {
			return nil, 0, err
		}
		tail = append(chunk, tail...)
		if end < 0 {
			i := bytes.LastIndexByte(tail, '\n')
			if i < 0 {
				continue
			}
			end = off + int64(i) + 1
		}
		nl := end - 1 - off // the line's '\n' within tail
		if j := bytes.LastIndexByte(tail[:nl], '\n'); j >= 0 {
			return tail[j+1 : nl], end, nil
		}
	}
	if end < 0 {
		return nil, 0, nil
	}
	return tail[:end-1], end, nil
}

// Log appends ev to the log. With sync it returns once the line is written and synced;
// without, once it is queued. It waits while the queue is full. It returns the writer's
// sticky error, if any, or ErrClosed after Close; ev is not logged then.
func (w *Writer) Log(ev *Event, sync bool) error {
	body, err := encode(ev)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	e := entry{body: body}
	if sync {
		e.done = waiters.Get().(chan error)
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	if err := w.Err(); err != nil {
		w.mu.RUnlock()
		return err
	}
	w.queue <- e
	w.mu.RUnlock()
	if !sync {
		return nil
	}
	err = <-e.done
	waiters.Put(e.done)
	return err
}

// Err returns the sticky write or sync error, nil while the log is healthy.
func (w *Writer) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close writes and syncs the lines queued, closes the file and returns the sticky error, if
// any. Later Logs return ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	return w.Err()
}

// run is the writer goroutine: it takes what the queue holds, up to maxGroup lines, writes
// it as one group and tells the waiting callers.
func (w *Writer) run() {
	defer close(w.done)
	group := make([]entry, 0, maxGroup)
	for e := range w.queue {
		group = append(group[:0], e)
	drain:
		for len(group) < maxGroup {
			select {
			case e, ok := <-w.queue:
				if !ok {
					break drain
				}
				group = append(group, e)
			default:
				break drain
			}
		}
		err := w.Err()
		if err == nil {
			if err = w.writeGroup(group); err != nil {
				err = fmt.Errorf("audit: %w", err)
				w.err.Store(&err)
				w.log.Error("audit log: write failed; no more lines will be written", "err", err)
			}
		}
		for i := range group {
			if group[i].done != nil {
				group[i].done <- err
			}
			group[i] = entry{}
		}
	}
	for _, f := range []*os.File{w.f, w.anchorFile} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil && w.Err() == nil {
			err = fmt.Errorf("audit: %w", err)
			w.err.Store(&err)
		}
	}
}

// writeGroup chains the lines of group, writes them and syncs them, starting a new file
// before a line that would take the current one past maxBytes, then anchors the last one.
func (w *Writer) writeGroup(group []entry) error {
	w.pending = w.pending[:0]
	for _, e := range group {
		start := len(w.pending)
		w.pending = appendLine(w.pending, w.prev, w.seq+1, e.body)
		n := int64(len(w.pending) - start)
		if w.f != nil && w.size+int64(start) > 0 && w.size+int64(start)+n > w.maxBytes {
			if err := w.flush(start); err != nil {
				return err
			}
			if err := w.f.Close(); err != nil {
				return err
			}
			w.f, w.size = nil, 0
			start = 0
		}
		if w.f == nil {
			if err := w.create(w.seq + 1); err != nil {
				return err
			}
		}
		w.prev = sha256.Sum256(w.pending[start : len(w.pending)-1])
		w.seq++
	}
	if err := w.flush(len(w.pending)); err != nil {
		return err
	}
	return w.writeAnchor(anchor{seq: w.seq, sum: w.prev})
}

// flush writes pending[:n] to the current file, syncs it and keeps pending[n:].
func (w *Writer) flush(n int) error {
	if n > 0 {
		if _, err := w.f.Write(w.pending[:n]); err != nil {
			return err
		}
		w.size += int64(n)
		if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
			return err
		}
	}
	w.pending = append(w.pending[:0], w.pending[n:]...)
	return nil
}

// create begins the file whose first line has sequence seq, and syncs the directory so
// that the file survives a crash.
func (w *Writer) create(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(w.dir, fileName(seq)), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, 0
	return nil
}

// appendLine appends the line of sequence seq: the chain members, then body (an event's
// members and closing brace, from encode), then '\n'.
func appendLine(dst []byte, prev [32]byte, seq uint64, body []byte) []byte {
	dst = append(dst, `{"previousLineSha256":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	dst = append(dst, `","sequence":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	dst = append(dst, body...)
	return append(dst, '\n')
}
