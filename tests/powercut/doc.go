// Package powercut holds the power-cut tests of the whole server: `sluice serve`, built from
// cmd/sluice, runs on a data directory mounted through package internal/lazyfs, is killed
// with SIGKILL under load (puts, resharding, retention changes), everything not yet synced is
// dropped as a power failure drops it, and a restarted server must return every acknowledged
// record its durability mode promises to keep (README.md, Durability). The package has tests
// only.
package powercut
