package replica

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
)

// BenchmarkPersist measures the persist path of a Ready (100 entries of 100 B and 1 KiB
// records, durability none and sync) beside segment.Log.Append of the same records in the
// same run: the cost of replication's storage over the single-node append.
func BenchmarkPersist(b *testing.B) {
	for _, mode := range []segment.Mode{segment.None, segment.Sync} {
		for _, size := range []int{100, 1024} {
			name := fmt.Sprintf("mode=%s/size=%d", segment.Durability{Mode: mode}, size)
			b.Run(name+"/persist", func(b *testing.B) {
				l, err := Open(b.TempDir(), Options{Segment: segment.Options{Durability: segment.Durability{Mode: mode}}})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := make([]byte, size)
				b.SetBytes(int64(100 * size))
				b.ReportAllocs()
				next := uint64(1)
				ents := make([]*pb.Entry, 100)
				for b.Loop() {
					for i := range ents {
						f := frame.Append(nil, &frame.Record{Seq: 1 << 63, Key: []byte("key"), Data: data})
						ents[i] = &pb.Entry{Index: proto.Uint64(next), Term: proto.Uint64(1), Type: pb.EntryNormal.Enum(), Data: f}
						next++
					}
					if err := l.Persist(&raft.Ready{Entries: ents}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/segment-append", func(b *testing.B) {
				l, err := segment.Open(b.TempDir(), segment.Options{Durability: segment.Durability{Mode: mode}})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := make([]byte, size)
				batch := make([]segment.Record, 100)
				b.SetBytes(int64(100 * size))
				b.ReportAllocs()
				for b.Loop() {
					for i := range batch {
						batch[i] = segment.Record{Key: []byte("key"), Data: data}
					}
					if err := l.Append(batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEntries measures Storage.Entries of 100 entries of 100 B records, as raft reads a
// Ready's committed entries back: persisted and not yet applied (answered from memory,
// cache.go) against applied (read from the segment log and encoded again).
func BenchmarkEntries(b *testing.B) {
	for _, applied := range []bool{false, true} {
		name := "cached"
		if applied {
			name = "log"
		}
		b.Run(name, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{Segment: segment.Options{Durability: segment.Durability{Mode: segment.None}}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ents := make([]*pb.Entry, 100)
			size := 0
			for i := range ents {
				f := frame.Append(nil, &frame.Record{Seq: 1 << 63, Key: []byte("key"), Data: make([]byte, 100)})
				ents[i] = &pb.Entry{Index: proto.Uint64(uint64(i + 1)), Term: proto.Uint64(1), Type: pb.EntryNormal.Enum(), Data: f}
				size += len(f)
			}
			if err := l.Persist(&raft.Ready{Entries: ents}); err != nil {
				b.Fatal(err)
			}
			if applied {
				if err := l.Apply(ents); err != nil {
					b.Fatal(err)
				}
			}
			st := l.RaftStorage()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				got, err := st.Entries(1, 101, 1<<30)
				if err != nil || len(got) != 100 {
					b.Fatalf("%d entries, %v", len(got), err)
				}
			}
		})
	}
}
