// Package keyring is sluice's local stand-in for AWS KMS: a directory of 256-bit master
// keys that wrap (encrypt) and unwrap the data keys the engine seals records with.
//
// It owns the keyring directory: one file per master key, <key id>.key, holding the key's
// 32 bytes (generated with crypto/rand), one file <key id>.v<N>.key per later version N ≥ 2
// that Rotate added (a rotated key keeps its id, as in AWS KMS; Wrap uses the newest
// version and returns it, Unwrap is told which version to use), and aliases.json, mapping alias names
// ("alias/aws/kinesis", "alias/NAME") to key ids (UUIDs). The directory is created 0700 and
// every file 0600 on first use; an existing directory or key file readable by group or
// others is refused. Key material never appears in an error or a log line: errors name key
// ids only.
//
// Key ids are resolved as AWS KMS resolves a KeyId: a key id (UUID), a key ARN
// (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias name (alias/NAME) or an alias ARN
// (arn:aws:kms:REGION:ACCOUNT:alias/NAME). alias/aws/kinesis, the AWS managed key of
// Kinesis, is created on first use; every other key and alias must exist (ErrNotFound):
// CreateKey makes one.
//
// Wrapping is AES-256-GCM under the master key with a random 96-bit nonce (a master key
// wraps a handful of data keys, far below the 2^32 random nonces one key tolerates) and
// caller-supplied additional data binding the wrapped key to its use.
//
// Concurrency: a Ring is safe for concurrent use; its loaded keys are cached under a mutex.
// Several processes may use one directory at once (a server and sluice rotate-key): Wrap
// reads the directory for the newest version every time, and Rotate creates a version's
// file with a link that fails if it exists, so no version is ever replaced.
// Durability: a new key file and aliases.json are written with vfs.WriteFileAtomic (synced,
// renamed, directory synced), and a new version synced, linked and its directory synced,
// before the key is used.
package keyring
