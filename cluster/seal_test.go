package cluster

import "testing"

// TestSealFormat round-trips the peer seal request and answer and refuses malformed ones.
func TestSealFormat(t *testing.T) {
	q := sealRequest{op: sealOpUnseal, stream: "orders", gen: 1 << 40, shard: 1<<32 - 1, token: 0xfedcba9876543210}
	b := appendSealRequest(nil, &q)
	got, err := decodeSealRequest(b)
	if err != nil || got != q {
		t.Fatalf("request: %+v, %v; want %+v", got, err, q)
	}
	bad := map[string][]byte{
		"cut short":      b[:len(b)-1],
		"trailing bytes": append(append([]byte(nil), b...), 0),
		"version":        append([]byte{sealVersion + 1}, b[1:]...),
		"op":             append([]byte{sealVersion, 3}, b[2:]...),
		"no name":        appendSealRequest(nil, &sealRequest{op: sealOpSeal}),
		"shard":          append(append(appendSealRequest(nil, &sealRequest{op: sealOpSeal, stream: "s"})[:5], 0x80, 0x80, 0x80, 0x80, 0x10), make([]byte, 8)...),
	}
	for name, body := range bad {
		if _, err := decodeSealRequest(body); err == nil {
			t.Errorf("request %s: decoded", name)
		}
	}
	for _, tc := range []struct {
		notLeader bool
		v         uint64
	}{{false, 0}, {false, 1 << 50}, {true, 7}, {true, 0}} {
		a := appendSealAnswer(nil, tc.notLeader, tc.v)
		nl, v, err := decodeSealAnswer(a)
		if err != nil || nl != tc.notLeader || v != tc.v {
			t.Errorf("answer %+v: %v %d %v", tc, nl, v, err)
		}
		if _, _, err := decodeSealAnswer(a[:len(a)-1]); err == nil {
			t.Errorf("answer %+v cut short: decoded", tc)
		}
	}
	if _, _, err := decodeSealAnswer([]byte{sealVersion, 2, 0}); err == nil {
		t.Error("answer with status 2: decoded")
	}
}

// TestPeerSealRefusals posts seals to a node holding no replica: unsigned or signed with
// another key, 403; malformed, 400; a shard the node holds no replica of, 404 (the sender
// asks the leader it learns).
func TestPeerSealRefusals(t *testing.T) {
	checkPeerRefusals(t, SealPath, appendSealRequest(nil, &sealRequest{op: sealOpSeal, stream: "s", gen: 1, shard: 2}))
}
