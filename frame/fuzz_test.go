package frame

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to Decode. It must never panic, and a frame it
// accepts must be exactly what Append makes of the record it returned. With fixCRC the
// target first writes the right CRC for whatever length the bytes claim, so that the fuzzer
// explores the length and bounds checks behind the CRC too.
func FuzzDecodeFrame(f *testing.F) {
	for _, r := range []Record{
		sample,
		{},
		{Seq: 1, Time: 1, Key: []byte("k")},
		{Seq: 1 << 63, Time: -1, Flags: 0xffff, Key: payload(1, 7), Data: payload(2, 8)},
		{Seq: 9, Key: payload(3, MaxKeyLen), Data: payload(4, 100)},
	} {
		b := Append(nil, &r)
		f.Add(b, false)
		f.Add(append(bytes.Clone(b), b...), false)          // two frames
		f.Add(append(bytes.Clone(b), 0, 0, 0, 0), false)    // a frame and the end
		f.Add(b[:HeaderSize+len(r.Key)+len(r.Data)], false) // without its padding
		f.Add(b[:len(b)/2], false)
		bad := bytes.Clone(b)
		bad[len(bad)/2] ^= 0x10
		f.Add(bad, false)
		f.Add(bad, true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0, 0, 0}, false)
	f.Add([]byte{0, 0, 0, 0}, false)
	f.Add(make([]byte, 64), false)
	f.Add([]byte{31, 0, 0, 0}, false)
	f.Add(append([]byte{32, 0, 0, 0}, make([]byte, 28)...), true)
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 60)...), true)
	// klen above MaxKeyLen with a consistent length.
	big := make([]byte, HeaderSize+MaxKeyLen+1+8)
	binary.LittleEndian.PutUint32(big, HeaderSize+MaxKeyLen+1)
	binary.LittleEndian.PutUint16(big[24:], MaxKeyLen+1)
	f.Add(big, true)

	f.Fuzz(func(t *testing.T, b []byte, fixCRC bool) {
		if fixCRC && len(b) >= 8 {
			b = bytes.Clone(b)
			if n := int(binary.LittleEndian.Uint32(b)); n >= 8 && n <= len(b) {
				binary.LittleEndian.PutUint32(b[4:], checksum(b[:n]))
			}
		}
		r, n, err := Decode(b)
		if err != nil {
			if n != 0 || r.Key != nil || r.Data != nil || r.Seq != 0 {
				t.Fatalf("error %v came with n %d and record %+v", err, n, r)
			}
			return
		}
		if n == 0 {
			if len(b) < 4 || binary.LittleEndian.Uint32(b) != 0 {
				t.Fatalf("end of log reported for % x", b[:min(len(b), 8)])
			}
			if r.Key != nil || r.Data != nil || r.Seq != 0 {
				t.Fatalf("end of log came with record %+v", r)
			}
			return
		}
		unpadded := HeaderSize + len(r.Key) + len(r.Data)
		if n > len(b) || (n != Align(unpadded) && !(n == unpadded && Align(unpadded) > len(b))) {
			t.Fatalf("n %d for a %d-byte frame in a %d-byte buffer", n, unpadded, len(b))
		}
		if len(r.Key) > MaxKeyLen || len(r.Data) > MaxDataLen {
			t.Fatalf("accepted key %d bytes, data %d bytes", len(r.Key), len(r.Data))
		}
		// Key and Data alias b, where the frame says they are.
		if len(r.Key) > 0 && &r.Key[0] != &b[HeaderSize] {
			t.Fatal("Key does not alias the frame")
		}
		if len(r.Data) > 0 && &r.Data[0] != &b[HeaderSize+len(r.Key)] {
			t.Fatal("Data does not alias the frame")
		}
		enc := Append(nil, &r)
		if len(enc) != Align(unpadded) {
			t.Fatalf("re-encoded frame is %d bytes, want %d", len(enc), Align(unpadded))
		}
		// The padding is outside the CRC (it covers bytes [0, 4) and [8, len)); everything
		// else must come back byte for byte.
		if !bytes.Equal(enc[:unpadded], b[:unpadded]) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc[:unpadded], b[:unpadded])
		}
		// Decoding the frame alone gives the same answer.
		r2, n2, err := Decode(b[:n])
		if err != nil || n2 != n || r2.Seq != r.Seq || r2.Time != r.Time || r2.Flags != r.Flags ||
			!bytes.Equal(r2.Key, r.Key) || !bytes.Equal(r2.Data, r.Data) {
			t.Fatalf("decoding the frame alone: n %d, %v; first decode n %d", n2, err, n)
		}
		if h, err := DecodeHeader(b); err != nil || h.Len != unpadded || h.Seq != r.Seq || h.Time != r.Time || h.Flags != r.Flags ||
			h.KeyLen != len(r.Key) || h.DataLen != len(r.Data) || CheckCRC(b[:h.Len]) != nil {
			t.Fatalf("DecodeHeader and CheckCRC disagree: %+v, %v", h, err)
		}
	})
}
