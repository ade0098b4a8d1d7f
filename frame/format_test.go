package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// sample has every field set, with an unknown flag bit that must be preserved. Its frame is
// 60 bytes, 4 of them padding.
var sample = Record{
	Seq:   0x0102030405060708,
	Time:  1_700_000_000_123_456_789,
	Flags: FlagEncrypted | 0x8000,
	Key:   []byte("partition-key"),
	Data:  []byte("hello, sluice\x00\xff"),
}

// payload returns n pseudo-random bytes, the same for the same seed.
func payload(seed, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var frameLens = []int{0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 255, 256, 1023, 1024}

func TestSizesAndPadding(t *testing.T) {
	for _, klen := range frameLens {
		for _, dlen := range append(frameLens, 4095, 4096, 4097) {
			r := Record{Seq: uint64(klen*10000 + dlen + 1), Time: int64(dlen) - 5, Flags: uint16(klen), Key: payload(klen, klen), Data: payload(dlen+1_000_000, dlen)}
			unpadded := HeaderSize + klen + dlen
			size := Size(klen, dlen)
			if size%8 != 0 || size < unpadded || size-unpadded > 7 {
				t.Fatalf("Size(%d, %d) = %d; want the multiple of 8 at or above %d", klen, dlen, size, unpadded)
			}
			prefix := []byte("prefix")
			b := Append(bytes.Clone(prefix), &r)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatalf("k%d d%d: Append changed dst's existing bytes", klen, dlen)
			}
			f := b[len(prefix):]
			if len(f) != size {
				t.Fatalf("k%d d%d: Append appended %d bytes, Size says %d", klen, dlen, len(f), size)
			}
			if got := binary.LittleEndian.Uint32(f); got != uint32(unpadded) {
				t.Fatalf("k%d d%d: length word %d, want %d (without padding)", klen, dlen, got, unpadded)
			}
			if !allZero(f[unpadded:]) {
				t.Fatalf("k%d d%d: padding % x is not zero", klen, dlen, f[unpadded:])
			}
			// With following bytes, exactly padded, and cut to the unpadded length.
			for _, buf := range [][]byte{append(bytes.Clone(f), 0xff, 1, 2, 3, 4, 5, 6, 7, 8), f, f[:unpadded]} {
				d, n, err := Decode(buf)
				want := min(size, len(buf))
				if err != nil || n != want {
					t.Fatalf("k%d d%d buffer %d: Decode n %d, %v; want n %d", klen, dlen, len(buf), n, err, want)
				}
				if d.Seq != r.Seq || d.Time != r.Time || d.Flags != r.Flags || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
					t.Fatalf("k%d d%d: decoded %+v, want %+v", klen, dlen, d, r)
				}
				if cap(d.Key) != len(d.Key) || cap(d.Data) != len(d.Data) {
					t.Fatalf("k%d d%d: key/data capacities %d/%d reach past their lengths %d/%d", klen, dlen, cap(d.Key), cap(d.Data), len(d.Key), len(d.Data))
				}
			}
		}
	}
}

func TestLargest(t *testing.T) {
	r := Record{Seq: 1, Time: 2, Key: payload(1, MaxKeyLen), Data: bytes.Repeat([]byte{0xa5, 0, 1, 2, 3, 0xff, 7, 9}, MaxDataLen/8)}
	b := Append(nil, &r)
	if len(b) != MaxSize || Size(MaxKeyLen, MaxDataLen) != MaxSize {
		t.Fatalf("largest frame is %d bytes, Size %d, MaxSize %d", len(b), Size(MaxKeyLen, MaxDataLen), MaxSize)
	}
	d, n, err := Decode(b)
	if err != nil || n != MaxSize || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
		t.Fatalf("Decode(largest) = n %d, %v", n, err)
	}
}

// frameWith returns a frame of r whose header fields were then changed by edit, with the CRC
// recomputed over the (possibly inconsistent) claimed length when it fits the buffer.
func frameWith(r Record, extra int, edit func(f []byte)) []byte {
	f := Append(nil, &r)
	f = append(f, make([]byte, extra)...)
	edit(f)
	if n := int(binary.LittleEndian.Uint32(f)); n >= 8 && n <= len(f) {
		binary.LittleEndian.PutUint32(f[4:], checksum(f[:n]))
	}
	return f
}

func TestDecodeRejects(t *testing.T) {
	base := Record{Seq: 42, Time: 1_700_000_000_000_000_000, Flags: 1, Key: []byte("key"), Data: []byte("some data!")} // 45 bytes
	put32 := func(off int, v uint32) func([]byte) {
		return func(f []byte) { binary.LittleEndian.PutUint32(f[off:], v) }
	}
	put16 := func(off int, v uint16) func([]byte) {
		return func(f []byte) { binary.LittleEndian.PutUint16(f[off:], v) }
	}
	both := func(a, b func([]byte)) func([]byte) { return func(f []byte) { a(f); b(f) } }
	cases := []struct {
		name  string
		frame []byte
	}{
		{"length 1", frameWith(base, 64, put32(0, 1))},
		{"length 8", frameWith(base, 64, put32(0, 8))},
		{"length 31", frameWith(base, 64, put32(0, 31))},
		{"length 32, key and data claimed", frameWith(base, 64, put32(0, 32))},
		{"length above max", frameWith(base, 64, put32(0, MaxSize+1))},
		{"length 0xffffffff", frameWith(base, 64, put32(0, math.MaxUint32))},
		{"length one more than key+data", frameWith(base, 64, put32(0, 46))},
		{"length one less than key+data", frameWith(base, 64, put32(0, 44))},
		{"key length one more", frameWith(base, 64, put16(24, 4))},
		{"key length one less", frameWith(base, 64, put16(24, 2))},
		{"data length one more", frameWith(base, 64, put32(28, 11))},
		{"data length one less", frameWith(base, 64, put32(28, 9))},
		{"data length wraps the sum", frameWith(base, 64, put32(28, math.MaxUint32-20))},
		{"key length above max, sum consistent", frameWith(Record{Key: make([]byte, 8)}, MaxKeyLen+64,
			both(put32(0, HeaderSize+MaxKeyLen+1), both(put16(24, MaxKeyLen+1), put32(28, 0))))},
		{"key length 0xffff, sum consistent", frameWith(Record{}, 0x10000+64,
			both(put32(0, HeaderSize+0xffff), put16(24, 0xffff)))},
		{"data length above max, sum consistent", frameWith(Record{}, MaxDataLen+64,
			both(put32(0, HeaderSize+MaxDataLen+1), put32(28, MaxDataLen+1)))},
		{"empty buffer", nil},
		{"3 bytes", []byte{0, 0, 0}},
		{"3 bytes of a length", []byte{45, 0, 0}},
	}
	// A bit flip in every field, with the CRC left as it was.
	good := Append(nil, &base)
	for _, field := range []struct {
		name string
		off  int
	}{{"len", 0}, {"len high byte", 3}, {"CRC", 4}, {"CRC high byte", 7}, {"seq", 8}, {"seq high byte", 15}, {"time", 16}, {"time high byte", 23},
		{"klen", 24}, {"klen high byte", 25}, {"flags", 26}, {"flags high byte", 27}, {"dlen", 28}, {"dlen high byte", 31},
		{"key", 32}, {"key last byte", 34}, {"data", 35}, {"data last byte", 44}} {
		for bit := range 8 {
			f := bytes.Clone(good)
			f[field.off] ^= 1 << bit
			cases = append(cases, struct {
				name  string
				frame []byte
			}{fmt.Sprintf("bit %d of %s flipped", bit, field.name), f})
		}
	}
	// Every cut short of the unpadded frame.
	for cut := 0; cut < 45; cut++ {
		cases = append(cases, struct {
			name  string
			frame []byte
		}{fmt.Sprintf("cut at %d", cut), bytes.Clone(good[:cut])})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, n, err := Decode(tc.frame)
			if err == nil {
				t.Fatalf("Decode accepted it: n %d, record %+v", n, r)
			}
			if n != 0 || r.Key != nil || r.Data != nil {
				t.Fatalf("Decode returned n %d and a record alongside its error %v", n, err)
			}
			if !slices.ContainsFunc([]error{ErrShort, ErrLen, ErrLens, ErrCRC}, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("Decode: %v; want one of the package's errors", err)
			}
		})
	}
}

func TestDecodeEnd(t *testing.T) {
	for _, b := range [][]byte{
		{0, 0, 0, 0},
		make([]byte, 4096),
		append([]byte{0, 0, 0, 0}, []byte("garbage after the end is not looked at")...),
	} {
		r, n, err := Decode(b)
		if err != nil || n != 0 || r.Seq != 0 || r.Key != nil {
			t.Fatalf("Decode(% x…) = %+v, n %d, %v; want the end of the log", b[:4], r, n, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Append(nil, &sample)
	flip := func(off int) []byte { b := bytes.Clone(good); b[off] ^= 1; return b }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"cut inside the length word", good[:3], ErrShort},
		{"cut inside the header", good[:20], ErrShort},
		{"cut inside the data", good[:50], ErrShort},
		{"length below the header", frameWith(sample, 0, func(f []byte) { binary.LittleEndian.PutUint32(f, HeaderSize-1) }), ErrLen},
		{"key length one more", frameWith(sample, 0, func(f []byte) { f[24]++ }), ErrLens},
		{"data bit flipped", flip(HeaderSize + len(sample.Key)), ErrCRC},
		{"seq bit flipped", flip(8), ErrCRC},
	} {
		_, _, err := Decode(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode: %v, want %v", tc.name, err, tc.want)
		}
		if _, herr := DecodeHeader(tc.b); tc.want == ErrCRC && herr != nil {
			t.Errorf("%s: DecodeHeader: %v; it does not check the CRC", tc.name, herr)
		}
	}
	if h, err := DecodeHeader(good); err != nil || CheckCRC(good[:h.Len]) != nil {
		t.Fatalf("DecodeHeader, CheckCRC of a good frame: %+v, %v, %v", h, err, CheckCRC(good[:h.Len]))
	}
}

// The example of docs/FORMAT.md ("Frames"), byte for byte.
func TestDocExample(t *testing.T) {
	want := []byte{
		0x27, 0x00, 0x00, 0x00, 0x4a, 0xb7, 0x1d, 0xc2, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17, 0x02, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
		0x6b, 0x31, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
	}
	r := Record{Seq: 42, Time: 1700000000000000000, Key: []byte("k1"), Data: []byte("hello")}
	if got := Append(nil, &r); !bytes.Equal(got, want) {
		t.Fatalf("Append(%+v) =\n% x\nwant\n% x", r, got, want)
	}
	d, n, err := Decode(want)
	if err != nil || n != len(want) || d.Seq != r.Seq || d.Time != r.Time || string(d.Key) != "k1" || string(d.Data) != "hello" {
		t.Fatalf("Decode(example) = %+v, n %d, %v", d, n, err)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	// The paths a healthy read takes (a good frame, the end of the log, a frame cut by the
	// end of the buffer) and the rejection of a damaged one: the errors are static.
	r := sample
	b := Append(nil, &r)
	end := make([]byte, 8)
	bad := bytes.Clone(b)
	bad[HeaderSize] ^= 1
	if a := testing.AllocsPerRun(100, func() {
		Decode(b)
		Decode(end)
		Decode(b[:20])
		Decode(bad)
	}); a != 0 {
		t.Fatalf("Decode allocates %.1f times per run", a)
	}
}
