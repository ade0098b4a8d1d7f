package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

// rule forbids a set of packages to import another set.
//
// Patterns: "./x" is package x of this module and "./x/..." is x and every package below it
// ("./..." is the whole module). Any other pattern is a full import path, with the same
// "/..." wildcard.
type rule struct {
	why  string
	from []string // the packages the rule applies to
	// notFrom exempts packages matched by from; with mainOnly, only main packages among them.
	notFrom  []string
	mainOnly bool
	deny     []string // imports forbidden to them
	allow    []string // exceptions to deny
	// stdlibOnly forbids every import outside the standard library (allow still exempts).
	stdlibOnly bool
	// transitive applies deny to every dependency, not only to direct imports. The walk
	// stops at the first forbidden package of each import chain, so a violation names its
	// root cause.
	transitive bool
}

const (
	fasthttp = "github.com/valyala/fasthttp/..."
	profile  = "github.com/pkg/profile/..."
	mmapGo   = "github.com/edsrzf/mmap-go/..."
	sysUnix  = "golang.org/x/sys/unix/..."
	etcd     = "go.etcd.io/etcd/..."
	raftV3   = "go.etcd.io/raft/v3/..."
	protobuf = "google.golang.org/protobuf/..."
	toxi     = "github.com/Shopify/toxiproxy/..."
	goFuse   = "github.com/hanwen/go-fuse/v2/..."
)

// rules is the layering of STYLE.md, with the portable packages beside it:
//
//	cmd/ tools/ bench/ fuzz/ → server → account → stream → {segment → index, shardmap} → internal/*
//	cmd/ → cluster (etcd) → stream
//	client/ tools/cli/ → server/wire → frame → internal/crc (every GOOS: see make cross)
//	client/ → kpl → protowire
//	segment → frame
//
// and beside them iam, the policy evaluator server calls, which imports the standard
// library only, and multiraft, the Raft event loop and transport, which imports the
// standard library and go.etcd.io/raft/v3 (with raft's protobuf) only.
var rules = []rule{
	{
		why:        "audit knows nothing of HTTP or the engine: the standard library and x/sys/unix only",
		from:       []string{"./audit/..."},
		allow:      []string{"./audit/...", sysUnix},
		stdlibOnly: true,
	},
	{
		why:        "iam is a leaf: it imports the standard library only",
		from:       []string{"./iam/..."},
		allow:      []string{"./iam/..."},
		stdlibOnly: true,
		transitive: true,
	},
	{
		why:        "multiraft is the Raft loop and transport: the standard library and go.etcd.io/raft/v3 (and its protobuf) only; never server, fasthttp or the storage (a StateMachine is the caller's)",
		from:       []string{"./multiraft/..."},
		allow:      []string{"./multiraft/...", raftV3, protobuf},
		stdlibOnly: true,
		transitive: true,
	},
	{
		why:        "frame is the codec the storage shares with the client: the standard library and internal/crc only",
		from:       []string{"./frame/..."},
		deny:       []string{"./..."},
		allow:      []string{"./frame/...", "./internal/crc"},
		stdlibOnly: true,
	},
	{
		why:        "kpl is the client's codec of KPL aggregated records: the standard library and protowire only",
		from:       []string{"./kpl/..."},
		allow:      []string{"./kpl/...", "google.golang.org/protobuf/encoding/protowire"},
		stdlibOnly: true,
	},
	{
		why:        "index is a leaf: it may import internal/* only",
		from:       []string{"./index/..."},
		deny:       []string{"./..."},
		allow:      []string{"./index/...", "./internal/..."},
		transitive: true,
	},
	{
		why:        "segment may import frame, index and internal/* only",
		from:       []string{"./segment/..."},
		deny:       []string{"./..."},
		allow:      []string{"./segment/...", "./frame/...", "./index/...", "./internal/..."},
		transitive: true,
	},
	{
		why:        "shardmap is pure routing: it may import internal/* only",
		from:       []string{"./shardmap/..."},
		deny:       []string{"./..."},
		allow:      []string{"./shardmap/...", "./internal/..."},
		transitive: true,
	},
	{
		why:        "internal/* is the bottom layer: it may import other internal/* packages only",
		from:       []string{"./internal/..."},
		deny:       []string{"./..."},
		allow:      []string{"./internal/..."},
		transitive: true,
	},
	{
		why:        "internal/awsmsg is a leaf: it builds Kinesis's messages from the standard library alone",
		from:       []string{"./internal/awsmsg/..."},
		allow:      []string{"./internal/awsmsg/..."},
		stdlibOnly: true,
	},
	{
		why:        "stream is the engine: no HTTP and nothing from the layers above it (account uses the engine, never the reverse)",
		from:       []string{"./stream/..."},
		deny:       []string{"./account/...", "./server/...", "./client/...", "./cmd/...", "./tools/...", "./bench/...", "./fuzz/...", fasthttp},
		transitive: true,
	},
	{
		why:        "replica is one shard's Raft storage and replicated log: stream, segment, frame, shardmap, internal/* and go.etcd.io/raft/v3 only; no server, no HTTP",
		from:       []string{"./replica/..."},
		deny:       []string{"./...", fasthttp},
		allow:      []string{"./replica/...", "./stream/...", "./segment/...", "./frame/...", "./index/...", "./shardmap/...", "./internal/..."},
		transitive: true,
	},
	{
		why:        "stream is the engine: the cluster's control plane (package cluster, etcd) plugs into its Catalog seam from above, never the reverse",
		from:       []string{"./stream/..."},
		deny:       []string{"./cluster/...", etcd},
		transitive: true,
	},
	{
		why:        "cluster is the control plane over etcd: it may import stream and below and etcd's modules, nothing above it and no HTTP server",
		from:       []string{"./cluster/..."},
		deny:       []string{"./account/...", "./server/...", "./client/...", "./cmd/...", "./tools/...", "./bench/...", "./fuzz/...", fasthttp},
		transitive: true,
	},
	{
		why:     "only cluster imports etcd (cmd starts dev-cluster's etcd through it)",
		from:    []string{"./..."},
		notFrom: []string{"./cluster/..."},
		deny:    []string{etcd},
	},
	{
		why:        "account is the AWS account on top of the engine: it may import stream and below, nothing above it and no HTTP",
		from:       []string{"./account/..."},
		deny:       []string{"./server/...", "./client/...", "./cmd/...", "./tools/...", "./bench/...", "./fuzz/...", fasthttp},
		transitive: true,
	},
	{
		why:        "server sits below cmd, tools, bench and fuzz, and beside client (they share server/wire)",
		from:       []string{"./server/..."},
		deny:       []string{"./client/...", "./cmd/...", "./tools/...", "./bench/...", "./fuzz/..."},
		transitive: true,
	},
	{
		why:        "client and tools/cli build for every GOOS: they may reach server/wire and frame, never server or the storage, which builds on Linux only",
		from:       []string{"./client/...", "./tools/cli/...", "./server/wire/...", "./frame/..."},
		deny:       []string{"./server/...", "./stream/...", "./segment/...", "./index/...", mmapGo, sysUnix},
		allow:      []string{"./server/wire/..."},
		transitive: true,
	},
	{
		why:     "only server and client (and cmd, tools, bench) import fasthttp",
		from:    []string{"./..."},
		notFrom: []string{"./server/...", "./client/...", "./cmd/...", "./tools/...", "./bench/..."},
		deny:    []string{fasthttp},
	},
	{
		why:        "toxiproxy is the cluster fault tests' proxy: test code only, never a package a binary links",
		from:       []string{"./..."},
		deny:       []string{toxi},
		transitive: true,
	},
	{
		why:        "gofakes3 is the S3 the tests of sluice deliver run against: tests only, never in a build",
		from:       []string{"./..."},
		deny:       []string{"github.com/johannesboyne/gofakes3/..."},
		transitive: true,
	},
	{
		why:     "go-fuse is test machinery: only internal/lazyfs imports it",
		from:    []string{"./..."},
		notFrom: []string{"./internal/lazyfs/..."},
		deny:    []string{goFuse},
	},
	{
		// The rules see the imports of non-test files only: a test may import lazyfs.
		why:     "internal/lazyfs (FUSE power cuts) is for tests: no package imports it",
		from:    []string{"./..."},
		notFrom: []string{"./internal/lazyfs/..."},
		deny:    []string{"./internal/lazyfs/..."},
	},
	{
		why:      "pkg/profile belongs to main packages (cmd, tools, bench); libraries take options",
		from:     []string{"./..."},
		notFrom:  []string{"./cmd/...", "./tools/...", "./bench/..."},
		mainOnly: true,
		deny:     []string{profile},
	},
}

// forbiddenNames are package names that say nothing about what the package holds.
var forbiddenNames = []string{"util", "utils", "common"}

// pkg is one package as `go list -json` describes it.
type pkg struct {
	ImportPath string
	Name       string
	Imports    []string // direct imports of the non-test sources
	DepOnly    bool     // listed only as a dependency of the packages asked for
	Standard   bool
	Error      *struct{ Err string }
}

// violation is a forbidden import edge, or a forbidden package name (dep empty).
type violation struct {
	pkg, dep string
	via      []string // the import chain from pkg to dep, both excluded; nil for a direct import
	why      string
}

func (v violation) String() string {
	switch {
	case v.dep == "":
		return fmt.Sprintf("%s: %s", v.pkg, v.why)
	case len(v.via) > 0:
		return fmt.Sprintf("%s depends on %s (via %s): %s", v.pkg, v.dep, strings.Join(v.via, " → "), v.why)
	}
	return fmt.Sprintf("%s imports %s: %s", v.pkg, v.dep, v.why)
}

// match reports whether the import path p matches pattern (see rule).
func match(module, pattern, p string) bool {
	if rest, ok := strings.CutPrefix(pattern, "./"); ok {
		pattern = module + "/" + rest
	}
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == prefix || strings.HasPrefix(p, prefix+"/")
	}
	return p == pattern
}

func matchAny(module string, patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(module, pat, p) })
}

func (r *rule) appliesTo(module string, p *pkg) bool {
	if !matchAny(module, r.from, p.ImportPath) {
		return false
	}
	exempt := matchAny(module, r.notFrom, p.ImportPath) && (!r.mainOnly || p.Name == "main")
	return !exempt
}

// denies reports whether the rule forbids importing dep; graph tells the standard library's
// packages apart.
func (r *rule) denies(module string, graph map[string]*pkg, dep string) bool {
	if matchAny(module, r.allow, dep) {
		return false
	}
	if r.stdlibOnly {
		if p := graph[dep]; p == nil || !p.Standard {
			return true
		}
	}
	return matchAny(module, r.deny, dep)
}

// check returns the violations of rules and forbiddenNames by the packages of module in pkgs.
// pkgs is the output of `go list -deps`: the module's packages and their dependencies (marked
// DepOnly, and never checked themselves).
func check(module string, pkgs []pkg, rules []rule) []violation {
	graph := make(map[string]*pkg, len(pkgs))
	for i := range pkgs {
		graph[pkgs[i].ImportPath] = &pkgs[i]
	}
	var out []violation
	for i := range pkgs {
		p := &pkgs[i]
		if p.DepOnly || !match(module, "./...", p.ImportPath) {
			continue
		}
		if slices.Contains(forbiddenNames, p.Name) || slices.Contains(forbiddenNames, path.Base(p.ImportPath)) {
			out = append(out, violation{pkg: p.ImportPath, why: fmt.Sprintf("no grab-bag packages named %s", strings.Join(forbiddenNames, ", "))})
		}
		for j := range rules {
			r := &rules[j]
			if !r.appliesTo(module, p) {
				continue
			}
			if !r.transitive {
				for _, dep := range p.Imports {
					if r.denies(module, graph, dep) {
						out = append(out, violation{pkg: p.ImportPath, dep: dep, why: r.why})
					}
				}
				continue
			}
			out = append(out, walk(module, graph, p, r)...)
		}
	}
	return out
}

// walk visits p's dependencies breadth first and reports the forbidden ones, each with the
// shortest chain that reaches it; it does not walk past a forbidden package.
func walk(module string, graph map[string]*pkg, p *pkg, r *rule) []violation {
	var out []violation
	parent := map[string]string{p.ImportPath: ""}
	queue := []string{p.ImportPath}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		node := graph[cur]
		if node == nil || node.Standard {
			continue // the standard library imports nothing of ours
		}
		for _, dep := range node.Imports {
			if _, seen := parent[dep]; seen {
				continue
			}
			parent[dep] = cur
			if r.denies(module, graph, dep) {
				var via []string
				for q := cur; q != p.ImportPath; q = parent[q] {
					via = append(via, q)
				}
				slices.Reverse(via)
				out = append(out, violation{pkg: p.ImportPath, dep: dep, via: via, why: r.why})
				continue
			}
			queue = append(queue, dep)
		}
	}
	return out
}

// goList runs the go command in dir and returns its standard output.
func goList(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestImports checks the module's real import graph.
func TestImports(t *testing.T) {
	var mod struct{ Path, Dir string }
	if err := json.Unmarshal(goList(t, ".", "-m", "-json"), &mod); err != nil {
		t.Fatalf("go list -m -json: %v", err)
	}
	out := goList(t, mod.Dir, "-e", "-deps", "-json=ImportPath,Name,Imports,DepOnly,Standard,Error", "./...")
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}

	// Guard against a vacuous pass: the listing must include this very package.
	self := mod.Path + "/internal/depcheck"
	var listed []string
	for _, p := range pkgs {
		if p.DepOnly {
			continue
		}
		listed = append(listed, strings.TrimPrefix(p.ImportPath, mod.Path+"/"))
		if p.Error != nil {
			// Compilation is vet's and test's business; the imports go list could read
			// are still checked.
			t.Logf("note: %s: %s", p.ImportPath, p.Error.Err)
		}
	}
	if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == self && !p.DepOnly }) {
		t.Fatalf("go list ./... in %s did not list %s; listed %v", mod.Dir, self, listed)
	}
	t.Logf("checked %d packages of %s: %s", len(listed), mod.Path, strings.Join(listed, " "))

	for _, v := range check(mod.Path, pkgs, rules) {
		t.Error(v)
	}
}

// TestCheck feeds fake import graphs to check, so that the rules are known to bite.
func TestCheck(t *testing.T) {
	const m = "example.com/m"
	p := func(rel, name string, imports ...string) pkg {
		full := func(s string) string {
			if rest, ok := strings.CutPrefix(s, "./"); ok {
				return m + "/" + rest
			}
			return s
		}
		for i := range imports {
			imports[i] = full(imports[i])
		}
		return pkg{ImportPath: full(rel), Name: name, Imports: imports}
	}
	dep := func(importPath string, imports ...string) pkg {
		return pkg{ImportPath: importPath, Name: path.Base(importPath), Imports: imports, DepOnly: true}
	}
	std := pkg{ImportPath: "fmt", Name: "fmt", Standard: true, DepOnly: true}
	binary := pkg{ImportPath: "encoding/binary", Name: "binary", Standard: true, DepOnly: true}
	fast := dep("github.com/valyala/fasthttp", "fmt")
	prof := dep("github.com/pkg/profile")
	// layered is a graph that keeps every rule.
	layered := []pkg{
		std, binary, fast, prof,
		dep("github.com/klauspost/crc32", "golang.org/x/sys/cpu"),
		dep("golang.org/x/sys/cpu"),
		dep("golang.org/x/sys/unix"),
		dep("github.com/edsrzf/mmap-go", "golang.org/x/sys/unix"),
		p("./internal/crc", "crc", "github.com/klauspost/crc32"),
		p("./internal/vfs", "vfs", "fmt", "golang.org/x/sys/unix"),
		p("./internal/faultfs", "faultfs", "./internal/vfs"),
		p("./index", "index", "./internal/crc", "./internal/vfs"),
		p("./frame", "frame", "encoding/binary", "./internal/crc"),
		p("./segment", "segment", "./frame", "./index", "./internal/crc", "./internal/vfs", "fmt", "github.com/edsrzf/mmap-go"),
		p("./shardmap", "shardmap", "./internal/crc"),
		p("./internal/awsmsg", "awsmsg", "fmt"),
		p("./stream", "stream", "./segment", "./shardmap", "./internal/awsmsg"),
		p("./account", "account", "./stream", "./internal/awsmsg", "./internal/vfs"),
		p("./server/wire", "wire", "./frame"),
		p("./server", "server", "./account", "./stream", "./server/wire", "github.com/valyala/fasthttp"),
		p("./client", "client", "./server/wire", "./shardmap", "github.com/valyala/fasthttp"),
		p("./tools/cli", "cli", "./client", "fmt"),
		p("./tools/loadgen", "loadgen", "./client", "github.com/valyala/fasthttp"),
		p("./cmd/sluice", "main", "./server", "./tools/loadgen", "github.com/pkg/profile"),
		p("./bench", "main", "./segment", "./client", "github.com/pkg/profile"),
		p("./iam", "iam", "fmt"),
		dep("google.golang.org/protobuf/proto", "fmt"),
		dep("go.etcd.io/raft/v3", "go.etcd.io/raft/v3/raftpb", "fmt"),
		dep("go.etcd.io/raft/v3/raftpb", "google.golang.org/protobuf/proto"),
		p("./multiraft", "multiraft", "fmt", "go.etcd.io/raft/v3", "go.etcd.io/raft/v3/raftpb", "google.golang.org/protobuf/proto"),
		dep("github.com/hanwen/go-fuse/v2/fs", "golang.org/x/sys/unix"),
		p("./internal/lazyfs", "lazyfs", "github.com/hanwen/go-fuse/v2/fs", "testing"),
	}
	with := func(extra ...pkg) []pkg {
		out := slices.Clone(layered)
		for _, e := range extra {
			if i := slices.IndexFunc(out, func(q pkg) bool { return q.ImportPath == e.ImportPath }); i >= 0 {
				out[i] = e
			} else {
				out = append(out, e)
			}
		}
		return out
	}

	tests := []struct {
		name string
		pkgs []pkg
		want []string // "pkg -> dep" relative to m, or "pkg: name"
	}{
		{"layered", layered, nil},
		{"segment imports stream",
			with(p("./segment", "segment", "./index", "./stream")),
			[]string{"segment -> stream"}},
		{"index reaches segment through internal",
			with(p("./internal/vfs", "vfs", "./segment")),
			[]string{"index -> segment", "internal/vfs -> segment", "internal/faultfs -> segment"}},
		{"shardmap imports index",
			with(p("./shardmap", "shardmap", "./index")),
			// The client imports shardmap, so it would reach the storage too.
			[]string{"shardmap -> index", "client -> index", "tools/cli -> index"}},
		{"stream reaches fasthttp through a helper",
			with(p("./internal/h", "h", "github.com/valyala/fasthttp"), p("./stream", "stream", "./segment", "./internal/h")),
			[]string{"stream -> github.com/valyala/fasthttp", "internal/h -> github.com/valyala/fasthttp", "account -> github.com/valyala/fasthttp"}},
		{"stream imports server",
			with(p("./stream", "stream", "./server")),
			// An import cycle in real life; reported once per package, at the first forbidden
			// package.
			[]string{"stream -> server", "account -> server"}},
		{"stream imports account",
			with(p("./stream", "stream", "./segment", "./account")),
			[]string{"stream -> account"}},
		{"account imports server",
			with(p("./account", "account", "./stream", "./server")),
			[]string{"account -> server"}},
		{"awsmsg imports a package of the module",
			with(p("./internal/awsmsg", "awsmsg", "fmt", "./internal/vfs")),
			[]string{"internal/awsmsg -> internal/vfs"}},
		{"awsmsg imports a third-party package",
			with(p("./internal/awsmsg", "awsmsg", "github.com/klauspost/crc32")),
			[]string{"internal/awsmsg -> github.com/klauspost/crc32"}},
		{"client imports server",
			with(p("./client", "client", "./server/wire", "./server")),
			[]string{"client -> server", "tools/cli -> server"}},
		{"frame imports segment",
			with(p("./frame", "frame", "encoding/binary", "./internal/crc", "./segment")),
			// Once as frame's own rule, once as a portable package; and through frame, every
			// portable package reaches the storage.
			[]string{"frame -> segment", "frame -> segment", "server/wire -> segment", "client -> segment", "tools/cli -> segment"}},
		{"frame imports a package outside the standard library",
			with(p("./frame", "frame", "encoding/binary", "./internal/crc", "github.com/klauspost/crc32")),
			[]string{"frame -> github.com/klauspost/crc32"}},
		{"frame imports another package of the module",
			with(p("./frame", "frame", "./internal/crc", "./shardmap")),
			[]string{"frame -> shardmap", "segment -> shardmap"}},
		{"server/wire imports segment",
			with(p("./server/wire", "wire", "./frame", "./segment")),
			[]string{"server/wire -> segment", "client -> segment", "tools/cli -> segment"}},
		{"tools/cli imports stream",
			with(p("./tools/cli", "cli", "./client", "./stream")),
			[]string{"tools/cli -> stream"}},
		{"client imports index",
			with(p("./client", "client", "./server/wire", "./index")),
			[]string{"client -> index", "tools/cli -> index"}},
		{"client reaches x/sys/unix through a dependency",
			with(dep("github.com/other/fs", "golang.org/x/sys/unix"), p("./client", "client", "./server/wire", "github.com/other/fs")),
			[]string{"client -> golang.org/x/sys/unix", "tools/cli -> golang.org/x/sys/unix"}},
		{"tools/cli imports mmap-go",
			with(p("./tools/cli", "cli", "./client", "github.com/edsrzf/mmap-go")),
			[]string{"tools/cli -> github.com/edsrzf/mmap-go"}},
		{"client reaches internal/vfs",
			with(p("./client", "client", "./server/wire", "./internal/vfs")),
			[]string{"client -> golang.org/x/sys/unix", "tools/cli -> golang.org/x/sys/unix"}},
		{"library imports pkg/profile",
			with(p("./stream", "stream", "./segment", "github.com/pkg/profile")),
			[]string{"stream -> github.com/pkg/profile"}},
		{"library under tools imports pkg/profile",
			with(p("./tools/loadgen", "loadgen", "./client", "github.com/pkg/profile")),
			[]string{"tools/loadgen -> github.com/pkg/profile"}},
		{"main package under tools imports pkg/profile",
			with(p("./tools/loadgen", "main", "./client", "github.com/pkg/profile")),
			nil},
		{"server imports go-fuse",
			with(p("./server", "server", "./account", "./stream", "./server/wire", "github.com/valyala/fasthttp", "github.com/hanwen/go-fuse/v2/fs")),
			[]string{"server -> github.com/hanwen/go-fuse/v2/fs"}},
		{"cmd imports internal/lazyfs",
			with(p("./cmd/sluice", "main", "./server", "./tools/loadgen", "./internal/lazyfs")),
			[]string{"cmd/sluice -> internal/lazyfs"}},
		{"grab-bag package",
			with(p("./internal/util", "util"), p("./stream/common", "common")),
			[]string{"internal/util: name", "stream/common: name"}},
		{"iam imports a package of the module",
			with(p("./iam", "iam", "fmt", "./internal/crc")),
			[]string{"iam -> internal/crc"}},
		{"iam imports a third-party package",
			with(p("./iam", "iam", "github.com/klauspost/crc32")),
			[]string{"iam -> github.com/klauspost/crc32"}},
		{"multiraft imports server",
			with(p("./multiraft", "multiraft", "go.etcd.io/raft/v3", "./server")),
			[]string{"multiraft -> server"}},
		{"multiraft imports segment",
			with(p("./multiraft", "multiraft", "go.etcd.io/raft/v3", "./segment")),
			[]string{"multiraft -> segment"}},
		{"multiraft imports stream",
			with(p("./multiraft", "multiraft", "go.etcd.io/raft/v3", "./stream")),
			[]string{"multiraft -> stream"}},
		{"multiraft imports fasthttp",
			with(p("./multiraft", "multiraft", "go.etcd.io/raft/v3", "github.com/valyala/fasthttp")),
			// Also the rule that only server, client and the mains import fasthttp.
			[]string{"multiraft -> github.com/valyala/fasthttp", "multiraft -> github.com/valyala/fasthttp"}},
		{"multiraft reaches a third-party package through raft",
			with(dep("go.etcd.io/raft/v3", "go.etcd.io/raft/v3/raftpb", "github.com/klauspost/crc32")),
			[]string{"multiraft -> github.com/klauspost/crc32"}},
		{"a package reaches toxiproxy through a dependency",
			with(dep("github.com/Shopify/toxiproxy/v2", "fmt"), dep("github.com/other/lib", "github.com/Shopify/toxiproxy/v2"),
				p("./tools/cli", "cli", "./client", "fmt", "github.com/other/lib")),
			[]string{"tools/cli -> github.com/Shopify/toxiproxy/v2"}},
		{"dependencies are not checked",
			with(dep("github.com/other/util", "github.com/valyala/fasthttp", "github.com/pkg/profile"),
				p("./cmd/sluice", "main", "./server", "github.com/other/util")),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range check(m, tt.pkgs, rules) {
				k := strings.TrimPrefix(v.pkg, m+"/") + ": name"
				if v.dep != "" {
					k = strings.TrimPrefix(v.pkg, m+"/") + " -> " + strings.TrimPrefix(v.dep, m+"/")
				}
				got = append(got, k)
				t.Log(v)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("violations\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	const m = "example.com/m"
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"./...", m, true},
		{"./...", m + "/segment", true},
		{"./...", "example.com/mother", false},
		{"./segment/...", m + "/segment", true},
		{"./segment/...", m + "/segment/x", true},
		{"./segment/...", m + "/segmentx", false},
		{"./segment", m + "/segment/x", false},
		{fasthttp, "github.com/valyala/fasthttp/fasthttputil", true},
		{fasthttp, "github.com/valyala/fasthttpx", false},
		{"./internal/...", "internal/cpu", false}, // the standard library's internal
	}
	for _, tt := range tests {
		if got := match(m, tt.pattern, tt.path); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}
