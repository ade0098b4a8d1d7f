package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Machine limits. Each function measures one for about d and returns a rate.

const (
	chunk        = 1 << 20   // write size of the write limits
	limitFile    = 256 << 20 // size each write-limit file is preallocated to
	memmoveSize  = 64 << 20  // buffer size of the memmove limit
	touchRegion  = 32 << 20  // anonymous memory touched per pass of the page-touch limit
	pageSize     = 4 << 10
	limitSeedMix = 0x9e3779b97f4a7c15
)

// fillPattern fills b with a cheap non-constant pattern.
func fillPattern(b []byte) {
	x := uint64(limitSeedMix)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// limitFiles hands out fresh preallocated files in dir and removes them all at the end of a
// run, so that a run keeps its pages cached as the log keeps its segments.
type limitFiles struct {
	dir   string
	seq   int
	files []*os.File
}

func (l *limitFiles) next(size int64) (*os.File, error) {
	l.seq++
	f, err := os.OpenFile(filepath.Join(l.dir, fmt.Sprintf("limit-%d", l.seq)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	l.files = append(l.files, f)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return nil, fmt.Errorf("fallocate %s: %w", f.Name(), err)
	}
	return f, nil
}

func (l *limitFiles) removeAll() {
	for _, f := range l.files {
		f.Close()
		os.Remove(f.Name())
	}
	l.files = nil
}

// measureWrite is sequential pwrite(2) of 1 MiB chunks into fresh fallocated files, into the
// page cache (no sync): the bandwidth an append through write(2) can reach. Only the time
// spent in pwrite is counted, not making the files.
func measureWrite(ctx context.Context, dir string, d time.Duration) (float64, string, error) {
	buf := make([]byte, chunk)
	fillPattern(buf)
	files := &limitFiles{dir: dir}
	defer files.removeAll()
	var busy time.Duration
	var n int64
	for busy < d && ctx.Err() == nil {
		f, err := files.next(limitFile)
		if err != nil {
			return 0, "", err
		}
		start := time.Now()
		for off := int64(0); off < limitFile && ctx.Err() == nil; off += chunk {
			if _, err := f.WriteAt(buf, off); err != nil {
				return 0, "", err
			}
			n += chunk
			if off%(16*chunk) == 0 && busy+time.Since(start) >= d {
				break
			}
		}
		busy += time.Since(start)
	}
	return float64(n) / busy.Seconds(), fmt.Sprintf("%d MiB written into %d fresh file(s) of %d MiB", n>>20, len(files.files), limitFile>>20), ctx.Err()
}

// measureWriteSync is sequential pwrite(2) of 1 MiB at the end of a fresh fallocated file,
// each followed by fdatasync: the durable throughput one writer can reach without group
// commit batching more than 1 MiB per sync.
func measureWriteSync(ctx context.Context, dir string, d time.Duration) (float64, string, error) {
	buf := make([]byte, chunk)
	fillPattern(buf)
	files := &limitFiles{dir: dir}
	defer files.removeAll()
	f, err := files.next(1 << 30)
	if err != nil {
		return 0, "", err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, "", err
	}
	var n, off int64
	var syncTime time.Duration
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if off+chunk > 1<<30 {
			break // 1 GiB is several seconds of syncs here; d is shorter
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, "", err
		}
		t := time.Now()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, "", err
		}
		syncTime += time.Since(t)
		off += chunk
		n += chunk
	}
	el := time.Since(start)
	syncs := n / chunk
	note := ""
	if syncs > 0 {
		note = fmt.Sprintf("%d syncs, fdatasync %.2f ms each on average", syncs, syncTime.Seconds()*1e3/float64(syncs))
	}
	return float64(n) / el.Seconds(), note, ctx.Err()
}

// memmoveBufs are the memmove limit's buffers, allocated and touched once per process so
// that page faults stay out of the figure.
var memmoveBufs [2][]byte

// measureMemmove is copy between two 64 MiB buffers: bytes copied per second.
func measureMemmove(ctx context.Context, d time.Duration) (float64, string, error) {
	if memmoveBufs[0] == nil {
		for i := range memmoveBufs {
			memmoveBufs[i] = make([]byte, memmoveSize)
			fillPattern(memmoveBufs[i])
		}
	}
	src, dst := memmoveBufs[0], memmoveBufs[1]
	var n int64
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		copy(dst, src)
		n += memmoveSize
		src, dst = dst, src
	}
	return float64(n) / time.Since(start).Seconds(), "", ctx.Err()
}

// measureTouch is the rate at which the process can touch new anonymous memory, one store per
// 4 KiB page: the cost of a page fault (allocation, zeroing and whatever the hypervisor adds).
// It bounds every path that writes into pages nobody faulted in before: a cold mapping, a
// growing heap, and the page cache when the kernel must find new pages.
func measureTouch(ctx context.Context, d time.Duration) (float64, string, error) {
	var n int64
	var busy time.Duration
	for busy < d && ctx.Err() == nil {
		m, err := unix.Mmap(-1, 0, touchRegion, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return 0, "", err
		}
		start := time.Now()
		for i := 0; i < len(m); i += pageSize {
			m[i] = 1
		}
		busy += time.Since(start)
		n += touchRegion
		if err := unix.Munmap(m); err != nil {
			return 0, "", err
		}
	}
	pages := n / pageSize
	return float64(n) / busy.Seconds(), fmt.Sprintf("%.1f µs per page fault", busy.Seconds()*1e6/float64(pages)), ctx.Err()
}
