// Package depcheck holds no code, only a test: it lists the module's packages and their
// imports with `go list -deps -json` and fails on an import edge that breaks the layering of
// STYLE.md ("Packages and the direction of imports"):
//
//	cmd/ tools/ bench/ fuzz/ → server → account → stream → {segment → index, shardmap} → internal/*
//
// (server imports both account and stream; internal/awsmsg imports the standard library
// only.)
//
// and beside them iam, the policy evaluator server calls, which imports the standard
// library only.
//
// The rules are a table in depcheck_test.go; add a row when a new layer or a new third-party
// dependency with a placement rule appears. Packages that do not exist yet produce no edges,
// so rules may name them ahead of time. Only non-test imports are checked: an external test
// package (package foo_test) may import packages above foo, as integration tests do.
//
// Run it with `make depcheck` (go test -count=1 ./internal/depcheck). The -count=1 matters:
// the test reads other packages' sources through the go command, which the test cache does
// not track.
package depcheck
