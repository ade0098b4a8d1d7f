// Package keyring is sluice's local stand-in for AWS KMS: 256-bit master keys that wrap
// (encrypt) and unwrap the data keys the engine seals records with.
//
// A Ring does the work: it resolves key ids, generates keys (crypto/rand), wraps and
// unwraps, and caches the ciphers it loaded. Where the keys are kept is a Store: Dir, a
// keyring directory, on a single node; in cluster mode the cluster's keyring in etcd
// (package cluster's KeyringStore), which every node shares and caches in its own keyring
// directory, so that a data key one node wraps is unwrapped by every other.
//
// A keyring directory (Dir) holds one file per master key, <key id>.key, with the key's 32
// bytes, one file <key id>.v<N>.key per later version N ≥ 2 that Rotate added (a rotated
// key keeps its id, as in AWS KMS; Wrap uses the newest version and returns it, Unwrap is
// told which version to use), and aliases.json, mapping alias names ("alias/aws/kinesis",
// "alias/NAME") to key ids (UUIDs). A directory that caches another store also holds
// cache-of, naming what it caches (Dir.MarkCache). The directory is created 0700 and every
// file 0600 on first use; an existing directory or key file readable by group or others is
// refused. Key material never appears in an error or a log line: errors name key ids only.
//
// Key ids are resolved as AWS KMS resolves a KeyId: a key id (UUID), a key ARN
// (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME) or an alias ARN
// (arn:aws:kms:REGION:ACCOUNT:alias/NAME). alias/aws/kinesis, the AWS managed key of
// Kinesis, is created on first use (only if no one created it first: Store.Create's
// ifAbsent); every other key and alias must exist (ErrNotFound): CreateKey makes one.
//
// Wrapping is AES-256-GCM under the master key with a random 96-bit nonce (a master key
// wraps a handful of data keys, far below the 2^32 random nonces one key tolerates) and
// caller-supplied additional data binding the wrapped key to its use.
//
// Concurrency: a Ring and a Dir are safe for concurrent use. Several processes may use one
// store at once (a server and sluice rotate-key, the nodes of a cluster): Wrap asks the
// store for the newest version every time, and a store records a version only if it has
// none of that number (a Dir links the version's file to a name that must not exist), so no
// version is ever replaced.
// Durability: a Dir writes a new key file and aliases.json with vfs.WriteFileAtomic
// (synced, renamed, directory synced), and a new version synced, linked and its directory
// synced, before the key is used.
package keyring
