package cluster

import "github.com/sluice-streams/sluice/stream"

// The cluster's iterator key signs shard iterators and the page tokens of the List
// operations (stream.Options.IteratorKey): one key for every node, so that a token issued by
// one node is valid on any other, as a client moving between nodes needs.
//
// It is 32 random bytes of its own in etcd (meta/iterator-key, hex), created by the first
// node that starts with a transaction that writes it only if absent, as meta/peer-key. It is
// not derived from the peer key: the two protect different things (the peer traffic between
// nodes; the tokens handed to clients) and can then be replaced apart, and a peer key that
// leaked does not also let its holder forge iterators.
//
// Replacing it: a node reads the key once, at start. Removing meta/iterator-key and
// restarting the nodes one by one makes the first of them record a new key; until every
// node has restarted, a token issued by a node with the old key is refused by one with the
// new key (InvalidArgumentException "invalid ShardIterator"; a page token's call is refused
// the same way) and the client asks for a new iterator. Nothing else depends on the key, and
// every token expires 5 minutes after it is issued (stream.IteratorTTL), so the disruption
// ends 5 minutes after the last node restarted.

// EnsureIteratorKey returns the cluster's iterator key (stream.IteratorKeySize bytes),
// creating it if none is recorded yet: every node gets the same.
func (c *Client) EnsureIteratorKey() ([]byte, error) {
	return c.ensureSecret("meta/iterator-key", stream.IteratorKeySize)
}
