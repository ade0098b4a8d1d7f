package shardmap_test

import (
	"fmt"

	"github.com/sluice-streams/sluice/shardmap"
)

// A stream created with two shards, shard 0 split at 2^126, and a partition key routed to its
// shard.
func Example() {
	m, err := shardmap.New(2)
	if err != nil {
		panic(err)
	}
	newStart, err := shardmap.ParseKey("85070591730234615865843651857942052864") // 2^126
	if err != nil {
		panic(err)
	}
	m, change, err := m.Split(0, newStart)
	if err != nil {
		panic(err)
	}
	fmt.Println(change.Kind, "closed", change.Closed[0].String())
	for _, s := range m.Open() {
		parent := "none"
		if s.HasParent() {
			parent = s.Parent.String()
		}
		fmt.Printf("%s parent=%s %s..%s\n", s.Name(), parent, s.Range.Start, s.Range.End)
	}

	// Publish the map; routing readers load it without a lock.
	var current shardmap.Pointer
	current.Store(m)
	k := shardmap.KeyOfString("user-42")
	fmt.Println("user-42 hashes to", k, "in", current.Load().Route(k).Name())
	// Output:
	// split closed shardId-000000000000
	// shardId-000000000001 parent=none 170141183460469231731687303715884105728..340282366920938463463374607431768211455
	// shardId-000000000002 parent=shardId-000000000000 0..85070591730234615865843651857942052863
	// shardId-000000000003 parent=shardId-000000000000 85070591730234615865843651857942052864..170141183460469231731687303715884105727
	// user-42 hashes to 157107139746365290205026809710278036035 in shardId-000000000003
}
