package deliver

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
)

// decompress reads an object of format c, by readers independent of the compressor: the
// standard library's gzip and zip, Snappy's framing reader, and Hadoop's block framing read
// by readHadoopSnappy.
func decompress(c Compression, body []byte) ([]byte, error) {
	switch c {
	case Uncompressed:
		return body, nil
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case Zip:
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return nil, err
		}
		if len(zr.File) != 1 {
			return nil, fmt.Errorf("a ZIP object of %d files", len(zr.File))
		}
		f, err := zr.File[0].Open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	case Snappy:
		return io.ReadAll(snappy.NewReader(bytes.NewReader(body)))
	case HadoopSnappy:
		return readHadoopSnappy(body)
	}
	return nil, fmt.Errorf("compression %d", c)
}

// readHadoopSnappy reads Hadoop's block framing as BlockDecompressorStream does: blocks of
// an uncompressed length and chunks of a compressed length, both big-endian, until the
// block's length is reached.
func readHadoopSnappy(b []byte) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("a truncated block header")
		}
		want := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		got := 0
		for got < want {
			if len(b) < 4 {
				return nil, fmt.Errorf("a truncated chunk header")
			}
			n := int(binary.BigEndian.Uint32(b))
			if n > len(b)-4 || n > 256<<10 {
				return nil, fmt.Errorf("a chunk of %d bytes", n)
			}
			dec, err := snappy.Decode(nil, b[4:4+n])
			if err != nil {
				return nil, err
			}
			if len(dec) > hadoopSnappyBlock {
				return nil, fmt.Errorf("a chunk of %d bytes uncompressed, more than Hadoop's buffer takes", len(dec))
			}
			out, got, b = append(out, dec...), got+len(dec), b[4+n:]
		}
		if got != want {
			return nil, fmt.Errorf("a block of %d bytes, its header says %d", got, want)
		}
	}
	return out, nil
}

// TestCompressRoundTrip compresses inputs of several sizes (empty, one byte, across
// HADOOP_SNAPPY's block size, compressible and not) in every format with one compressor,
// reused, and reads them back.
func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3*hadoopSnappyBlock+17)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte(`{"user":"u1","event":"click"}`+"\n"), 20000)
	for c := Uncompressed; c <= HadoopSnappy; c++ {
		z := compressor{c: c}
		for _, in := range [][]byte{{}, {'x'}, text, random, random[:hadoopSnappyBlock], text[:100]} {
			body, err := z.compress(in, "name", time.Unix(1e9, 0))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decompress(c, body)
			if err != nil {
				t.Fatalf("%v, %d bytes: %v", c, len(in), err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("%v, %d bytes: %d bytes back, not the same", c, len(in), len(got))
			}
			if c != Uncompressed && len(in) == len(text) && len(body) > len(in)/4 {
				t.Errorf("%v: %d bytes of repeated text compress to %d", c, len(in), len(body))
			}
		}
	}
}
