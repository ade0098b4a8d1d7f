package replica

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
)

// TestEntryWithOurTokenButNotOurRecord: an Append whose entries this replica has not
// persisted yet (a deposed leader's proposal, say) settles only on an entry that holds the
// record it proposed. Another node's entry carrying the same proposal token (two Raft ids
// alike in the bits a token keeps, or a restarted node whose counter started again) is not
// acknowledged as its position: the client would be told its record is where another one
// is. The same entry holding the proposed record is acknowledged with its index.
func TestEntryWithOurTokenButNotOurRecord(t *testing.T) {
	for _, ours := range []bool{false, true} {
		name := map[bool]string{false: "other record", true: "our record"}[ours]
		t.Run(name, func(t *testing.T) {
			o := testOpts(nil)
			o.Timeout = time.Second
			l := mustOpenLog(t, t.TempDir(), o)
			defer l.Close()
			proposed := make(chan []byte, 1)
			l.SetProposer(proposerFunc(func(data [][]byte) error {
				proposed <- data[0]
				return nil
			}))
			batch := []segment.Record{{Key: []byte("mine"), Data: []byte("the record this replica proposed")}}
			done := make(chan error, 1)
			go func() { done <- l.Append(batch) }()
			mine, _, err := frame.Decode(<-proposed)
			if err != nil {
				t.Fatal(err)
			}
			entry := mine // the same token and, when ours, the same record
			if !ours {
				entry.Key, entry.Data = []byte("theirs"), []byte("another node's record")
			}
			ents := []*pb.Entry{
				{Index: proto.Uint64(1), Term: proto.Uint64(2), Type: pb.EntryNormal.Enum()},
				{Index: proto.Uint64(2), Term: proto.Uint64(2), Type: pb.EntryNormal.Enum(), Data: frame.Append(nil, &entry)},
			}
			if err := l.Persist(&raft.Ready{Entries: ents, HardState: hs(2, 0, 2)}); err != nil {
				t.Fatal(err)
			}
			if err := l.Apply(ents); err != nil {
				t.Fatal(err)
			}
			err = <-done
			switch {
			case ours && (err != nil || batch[0].Seq != 2):
				t.Fatalf("Append of the record committed at 2: %v, position %d", err, batch[0].Seq)
			case !ours && !errors.Is(err, ErrNotCommitted):
				t.Fatalf("Append answered %v (position %d) when another record committed under its token; want ErrNotCommitted", err, batch[0].Seq)
			}
		})
	}
}
