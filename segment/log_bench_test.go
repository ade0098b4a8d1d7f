package segment

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Benchmarks of the storage paths and of the raw ways to put bytes into a segment file.
//
// Record sizes are data sizes; every record also carries an 8-byte partition key, so a 1 KiB
// record is a 1,064-byte frame. b.SetBytes counts data bytes (what a client sends), not
// frame bytes. Files live under b.TempDir(), on the file system of the project.
//
//	go test -run='^$' -bench=. -benchtime=200ms ./segment
//
// Compare runs with benchstat; compare figures with the machine limits that
// `go run ./bench -suite storage` measures in the same run.

// benchKey is the partition key of every benchmark record.
var benchKey = []byte("key-0001")

// benchData returns n bytes of seeded pseudo-random data (CRC32C does not care, but a
// compressing file system would).
func benchData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// benchBatch returns n records of size data bytes sharing one data buffer. Append writes
// Seq and Time into the records, so a batch belongs to one appender.
func benchBatch(n, size int) []Record {
	data := benchData(size)
	batch := make([]Record, n)
	for i := range batch {
		batch[i] = Record{Key: benchKey, Data: data}
	}
	return batch
}

var appendSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// BenchmarkAppend measures Log.Append: one appender over record size × batch size × mode
// (none, sync), and, in Sync mode, several concurrent appenders sharing fdatasyncs (group
// commit). An op is one batch. Metrics: records/s; fdatasync/op (File.Sync calls per batch,
// segment rolls included); sync-%: share of the wall time spent in fdatasync and directory
// fsyncs (at most one runs at a time, so the share is of the log's time, not of a CPU's);
// max-sync-ms: the longest single fdatasync (in none mode, the one that seals a segment).
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []Mode{None, Sync} {
		for _, sz := range appendSizes {
			for _, n := range []int{1, 100, 500} {
				name := fmt.Sprintf("mode=%s/size=%s/batch=%d", Durability{Mode: mode}, sz.name, n)
				b.Run(name, func(b *testing.B) { benchAppend(b, mode, sz.n, n, 1) })
			}
		}
	}
	// Group commit: the same sync log with many appenders. Compare with the single
	// appender above at the same size and batch.
	for _, sz := range appendSizes[:2] {
		for _, n := range []int{1, 100} {
			for _, appenders := range []int{4, 16, 64} {
				name := fmt.Sprintf("mode=sync-group/size=%s/batch=%d/appenders=%d", sz.name, n, appenders)
				b.Run(name, func(b *testing.B) { benchAppend(b, Sync, sz.n, n, appenders) })
			}
		}
	}
}

func benchAppend(b *testing.B, mode Mode, size, n, appenders int) {
	fsys := vfs.NewCountingFS(vfs.OS)
	l, err := Open(b.TempDir(), Options{FS: fsys, Durability: Durability{Mode: mode}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batches := make([][]Record, appenders)
	for i := range batches {
		batches[i] = benchBatch(n, size)
	}
	// The first append creates the segment file: keep it out of the measurement.
	if err := l.Append(batches[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(n * size))
	fsys.Reset()
	b.ResetTimer()
	if appenders == 1 {
		batch := batches[0]
		for range b.N {
			if err := l.Append(batch); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for _, batch := range batches {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					if err := l.Append(batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	st := fsys.Stats()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)*float64(n)/sec, "records/s")
	b.ReportMetric(float64(st.Syncs)/float64(b.N), "fdatasync/op")
	b.ReportMetric(st.Time.Seconds()/sec*100, "sync-%")
	b.ReportMetric(float64(st.Longest)/1e6, "max-sync-ms")
}

// BenchmarkRead measures reading through the zero-copy View over data written in a setup
// phase (64 MiB of frames, one segment, pages cached and mapped by a warm-up pass). An op is
// one Read of up to 1,000 records / 1 MiB:
//
//	view: Read and Release only (Read checks every frame's CRC)
//	iter: Read, then Iter over every record (touching Key and Data lengths), Release
//	copy: Read, then copy View.Bytes() into a reused buffer, as a socket send would, Release
func BenchmarkRead(b *testing.B) {
	for _, sz := range appendSizes[:2] {
		for _, how := range []string{"view", "iter", "copy"} {
			b.Run(fmt.Sprintf("size=%s/%s", sz.name, how), func(b *testing.B) { benchRead(b, sz.n, how) })
		}
	}
}

const (
	readMaxRecords = 1000
	readMaxBytes   = 1 << 20
	readDataBytes  = 64 << 20
)

func benchRead(b *testing.B, size int, how string) {
	l, err := Open(b.TempDir(), Options{Durability: Durability{Mode: None}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	frameSize := frame.Size(len(benchKey), size)
	perView := min(readMaxRecords, readMaxBytes/frameSize)
	views := readDataBytes / (frameSize * perView)
	batch := benchBatch(perView, size)
	for range views {
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	first, last := uint64(1), l.Tip()
	if got := last - first + 1; got != uint64(views*perView) {
		b.Fatalf("wrote %d records, want %d (first sequence number not 1?)", got, views*perView)
	}
	buf := make([]byte, 0, readMaxBytes+frame.MaxSize)
	var sink int
	readOnce := func(from uint64) uint64 {
		v, err := l.Read(from, readMaxRecords, readMaxBytes)
		if err != nil {
			b.Fatal(err)
		}
		if v.Count != perView {
			b.Fatalf("read %d records from %d, want %d", v.Count, from, perView)
		}
		switch how {
		case "iter":
			it := v.Records()
			for it.Next() {
				r := it.Record()
				sink += len(r.Key) + len(r.Data)
			}
			if it.Err() != nil {
				b.Fatal(it.Err())
			}
		case "copy":
			buf = append(buf[:0], v.Bytes()...)
			sink += len(buf)
		}
		next := v.Next
		v.Release()
		if next > last {
			next = first
		}
		return next
	}
	// Warm-up pass: map every page of the segment, as a steady reader would have.
	for from, i := first, 0; i < views; i++ {
		from = readOnce(from)
	}
	b.ReportAllocs()
	b.SetBytes(int64(perView * size))
	from := first
	for b.Loop() {
		from = readOnce(from)
	}
	b.ReportMetric(float64(b.N)*float64(perView)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(perView), "ns/record")
	_ = sink
}

// Raw write methods, measured on files of the project's file system at the granularity of a
// batch of 512 × 1 KiB records. They are not measurements of the Log: no framing, no CRC.
//
//	pwrite           pwrite(2) of each batch into a fresh fallocated file (what segment does)
//	pwrite-recycled  pwrite(2) into a file whose pages are already cached (a recycled segment)
//	mmap-cold        memmove into a fresh MAP_SHARED mapping of a fresh fallocated file: every
//	                 page faults and is allocated and zeroed on the writer's path
//	mmap-populate    same, but each batch's range is first prefaulted with
//	                 madvise(MADV_POPULATE_WRITE), counted in the time: the whole cost of
//	                 prefaulting when the writer does it itself
//	mmap-recycled    memmove into a fresh mapping of a file whose pages are cached: minor
//	                 faults only
//	mmap-warm        memmove into a mapping prefaulted beforehand, outside the timer: the
//	                 writer's cost when another thread prefaults ahead of it
//	memmove-anon     memmove into a prefaulted anonymous buffer of the same size: the
//	                 bound for every mmap variant
//
// Each file is wmFileSize bytes; when a pass over it is done, the timer stops while a fresh
// file is made (or the recycled one remapped).
const (
	wmFileSize = 128 << 20
	wmBatch    = 512 << 10
)

func BenchmarkWriteMethod(b *testing.B) {
	data := benchData(wmBatch)
	for _, method := range []string{"pwrite", "pwrite-recycled", "mmap-cold", "mmap-populate", "mmap-recycled", "mmap-warm", "memmove-anon"} {
		b.Run(method, func(b *testing.B) {
			w := &wmTarget{b: b, dir: b.TempDir(), method: method}
			defer w.close()
			w.open()
			b.ReportAllocs()
			b.SetBytes(wmBatch)
			b.ResetTimer()
			off := 0
			for range b.N {
				if off+wmBatch > wmFileSize {
					b.StopTimer()
					w.renew()
					b.StartTimer()
					off = 0
				}
				w.write(data, off)
				off += wmBatch
			}
			b.StopTimer()
		})
	}
}

// wmTarget is the file (and mapping) a write method writes into.
type wmTarget struct {
	b      *testing.B
	dir    string
	method string
	seq    int
	f      *os.File
	m      []byte
}

func (w *wmTarget) open() {
	if w.method == "memmove-anon" {
		m, err := unix.Mmap(-1, 0, wmFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_POPULATE)
		if err != nil {
			w.b.Fatal(err)
		}
		w.m = m
		return
	}
	w.seq++
	f, err := os.OpenFile(filepath.Join(w.dir, fmt.Sprintf("wm-%d", w.seq)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		w.b.Fatal(err)
	}
	w.f = f
	if err := unix.Fallocate(int(f.Fd()), 0, 0, wmFileSize); err != nil {
		w.b.Fatal(err)
	}
	switch w.method {
	case "pwrite-recycled", "mmap-recycled":
		// Fill the file once so that its pages are in the page cache.
		zeros := make([]byte, 1<<20)
		for off := int64(0); off < wmFileSize; off += int64(len(zeros)) {
			if _, err := f.WriteAt(zeros, off); err != nil {
				w.b.Fatal(err)
			}
		}
	}
	w.mapFile()
}

func (w *wmTarget) mapFile() {
	if w.method == "pwrite" || w.method == "pwrite-recycled" {
		return
	}
	m, err := unix.Mmap(int(w.f.Fd()), 0, wmFileSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		w.b.Fatal(err)
	}
	w.m = m
	if w.method == "mmap-warm" {
		if err := unix.Madvise(m, unix.MADV_POPULATE_WRITE); err != nil {
			w.b.Fatalf("madvise(MADV_POPULATE_WRITE): %v", err)
		}
	}
}

func (w *wmTarget) unmap() {
	if w.m != nil {
		if err := unix.Munmap(w.m); err != nil {
			w.b.Fatal(err)
		}
		w.m = nil
	}
}

// renew starts a new pass: a fresh file, or the recycled file mapped afresh.
func (w *wmTarget) renew() {
	if w.method == "pwrite-recycled" || w.method == "memmove-anon" {
		return
	}
	if w.method == "mmap-recycled" {
		w.unmap()
		w.mapFile()
		return
	}
	w.close()
	w.open()
}

func (w *wmTarget) close() {
	w.unmap()
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
}

func (w *wmTarget) write(data []byte, off int) {
	switch w.method {
	case "pwrite", "pwrite-recycled":
		if _, err := w.f.WriteAt(data, int64(off)); err != nil {
			w.b.Fatal(err)
		}
	case "mmap-populate":
		if err := unix.Madvise(w.m[off:off+len(data)], unix.MADV_POPULATE_WRITE); err != nil {
			w.b.Fatalf("madvise(MADV_POPULATE_WRITE): %v", err)
		}
		copy(w.m[off:], data)
	default:
		copy(w.m[off:], data)
	}
}

// BenchmarkFdatasync measures what one sync of the Log costs at the file level: pwrite of an
// append (4 KiB or 1 MiB) at the end of a fresh fallocated file, then fdatasync. The +ckpt
// variants also rewrite a 64-byte checkpoint slot in the file's first page before the sync,
// as Log.syncPoint does, so the difference is the price of the checkpoint page.
func BenchmarkFdatasync(b *testing.B) {
	for _, n := range []int{4 << 10, 1 << 20} {
		for _, ckpt := range []bool{false, true} {
			name := fmt.Sprintf("append=%dKiB", n>>10)
			if ckpt {
				name += "+ckpt"
			}
			b.Run(name, func(b *testing.B) {
				const fileSize = 1 << 30
				data := benchData(n)
				slot := benchData(slotSize)
				dir := b.TempDir()
				seq := 0
				var f *os.File
				create := func() {
					if f != nil {
						f.Close()
						os.Remove(f.Name())
					}
					seq++
					var err error
					f, err = os.OpenFile(filepath.Join(dir, fmt.Sprintf("sync-%d", seq)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
					if err != nil {
						b.Fatal(err)
					}
					if err := unix.Fallocate(int(f.Fd()), 0, 0, fileSize); err != nil {
						b.Fatal(err)
					}
					if err := unix.Fdatasync(int(f.Fd())); err != nil {
						b.Fatal(err)
					}
				}
				create()
				defer func() { f.Close(); os.Remove(f.Name()) }()
				b.ReportAllocs()
				b.SetBytes(int64(n))
				b.ResetTimer()
				off := int64(DataOffset)
				for i := range b.N {
					if off+int64(n) > fileSize {
						b.StopTimer()
						create()
						off = DataOffset
						b.StartTimer()
					}
					if _, err := f.WriteAt(data, off); err != nil {
						b.Fatal(err)
					}
					off += int64(n)
					if ckpt {
						if _, err := f.WriteAt(slot, slotOffset(uint64(i))); err != nil {
							b.Fatal(err)
						}
					}
					if err := unix.Fdatasync(int(f.Fd())); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
