package keyring

// Store is where a Ring keeps its master keys and aliases: a directory on a single node
// (Dir), etcd in cluster mode (package cluster's KeyringStore), so that every node of a
// cluster holds the same keys. A Ring does the cryptography, resolves key ids and caches
// ciphers; a Store only keeps bytes.
//
// A version of a key, once recorded, is never replaced: Create and AddVersion record only
// what is absent, so two processes (two nodes, a server and sluice rotate-key) that make a
// key or a version at once agree on one. Errors wrap ErrNotFound, ErrRotating or
// ErrInsecure where those apply, and name key ids, never key material.
type Store interface {
	// Alias returns the key id alias ("alias/NAME") names; ErrNotFound if none.
	Alias(alias string) (string, error)
	// Create records version 1 of the new master key id with material key and, alias
	// non-empty, points alias at it. With ifAbsent the alias is pointed only if it names
	// no key yet, and if it does nothing is recorded; without, it is pointed at id
	// whatever it named. It returns the key id alias names afterwards (id when alias is
	// empty).
	Create(id string, key []byte, alias string, ifAbsent bool) (string, error)
	// Key returns the material of version v (≥ 1) of master key id; ErrNotFound if the
	// store has no such version.
	Key(id string, v uint32) ([]byte, error)
	// Newest returns the highest version of master key id the store holds; ErrNotFound
	// if it holds none.
	Newest(id string) (uint32, error)
	// AddVersion records version v (≥ 2) of master key id with material key if the store
	// has no version v: ErrRotating if it has one, ErrNotFound if it has no key id.
	AddVersion(id string, v uint32, key []byte) error
}
