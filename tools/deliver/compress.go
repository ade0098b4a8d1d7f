package deliver

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
)

// Compression is a CompressionFormat of Firehose.
type Compression uint8

const (
	Uncompressed Compression = iota // UNCOMPRESSED: the records as they are
	Gzip                            // GZIP: one gzip member (RFC 1952)
	Zip                             // ZIP: a zip archive of one deflated file
	Snappy                          // Snappy: Snappy's framing format (stream identifier, CRC-checked chunks)
	HadoopSnappy                    // HADOOP_SNAPPY: Hadoop's block framing of raw Snappy (see appendHadoopSnappy)
)

var compressionNames = [...]string{"UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"}

// String returns the CompressionFormat's name.
func (c Compression) String() string { return compressionNames[c] }

// Extension returns the file extension Firehose gives an object of the format: .gz, .zip,
// .snappy (HADOOP_SNAPPY too: the default extension of Hadoop's SnappyCodec), none when
// uncompressed.
func (c Compression) Extension() string {
	return [...]string{"", ".gz", ".zip", ".snappy", ".snappy"}[c]
}

func parseCompression(s string) (Compression, error) {
	for i, n := range compressionNames {
		if s == n {
			return Compression(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want UNCOMPRESSED, GZIP, ZIP, Snappy or HADOOP_SNAPPY", s)
}

// hadoopSnappyBlock is the most uncompressed bytes in one block of HADOOP_SNAPPY: Hadoop's
// BlockCompressorStream takes its codec's buffer (io.compression.codec.snappy.buffersize,
// 256 KiB) less the codec's worst-case overhead (buffer/6 + 32), so that a block's
// compressed chunk fits the buffer a Hadoop reader allocates.
const hadoopSnappyBlock = 256<<10 - (256<<10/6 + 32)

// compressor compresses objects, reusing its buffers and writers from one to the next. It
// is used by one goroutine at a time.
//
// GZIP and ZIP deflate with github.com/klauspost/compress/flate at its default level rather
// than compress/flate: the output is the same format (RFC 1951, read by any inflater,
// compress/gzip and archive/zip in the tests), of about the same size, made several times
// faster (BenchmarkBuffer/GZIP and /ZIP; the figures are in README.md, Delivery to S3).
type compressor struct {
	c   Compression
	out bytes.Buffer
	gz  *gzip.Writer
	fl  *flate.Writer // ZIP's deflater
	sn  *snappy.Writer
	hs  []byte // HADOOP_SNAPPY's output
}

// compress returns src compressed as one object; name is the file's name inside a ZIP
// archive. The result is valid until the next call.
func (z *compressor) compress(src []byte, name string, modified time.Time) ([]byte, error) {
	z.out.Reset()
	switch z.c {
	case Uncompressed:
		return src, nil
	case HadoopSnappy:
		z.hs = appendHadoopSnappy(z.hs[:0], src)
		return z.hs, nil
	case Gzip:
		if z.gz == nil {
			z.gz = gzip.NewWriter(&z.out)
		} else {
			z.gz.Reset(&z.out)
		}
		if _, err := z.gz.Write(src); err != nil {
			return nil, err
		}
		if err := z.gz.Close(); err != nil {
			return nil, err
		}
	case Snappy:
		if z.sn == nil {
			z.sn = snappy.NewBufferedWriter(&z.out)
		} else {
			z.sn.Reset(&z.out)
		}
		if _, err := z.sn.Write(src); err != nil {
			return nil, err
		}
		if err := z.sn.Close(); err != nil {
			return nil, err
		}
	case Zip:
		zw := zip.NewWriter(&z.out)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
			// Close ends the entry's deflate stream; the writer is Reset for the next.
			if z.fl == nil {
				var err error
				z.fl, err = flate.NewWriter(w, flate.DefaultCompression)
				return z.fl, err
			}
			z.fl.Reset(w)
			return z.fl, nil
		})
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	}
	return z.out.Bytes(), nil
}

// appendHadoopSnappy appends src in Hadoop's snappy framing (BlockCompressorStream with
// SnappyCodec), which Hadoop, Hive, Spark and Athena read as .snappy:
//
//	block    := uncompressed-length:uint32be chunk
//	chunk    := compressed-length:uint32be raw-snappy-block[compressed-length]
//
// one block per hadoopSnappyBlock bytes of src, each holding one chunk. Empty input is no
// bytes.
func appendHadoopSnappy(dst, src []byte) []byte {
	for len(src) > 0 {
		n := min(len(src), hadoopSnappyBlock)
		head := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		dst = binary.BigEndian.AppendUint32(dst, 0)
		max := snappy.MaxEncodedLen(n)
		dst = growBytes(dst, max)
		enc := snappy.Encode(dst[head+8:head+8+max], src[:n])
		binary.BigEndian.PutUint32(dst[head+4:], uint32(len(enc)))
		dst = dst[:head+8+len(enc)]
		src = src[n:]
	}
	return dst
}

// growBytes returns b with room for n more bytes beyond len(b), its length unchanged.
func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}
