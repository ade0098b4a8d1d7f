package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/server"
)

// clusterFlags are serve's cluster flags: with --cluster-etcd the server joins a cluster.
type clusterFlags struct {
	nodeID    *uint64
	etcd      *string
	replicas  *int
	name      *string
	peerAddr  *string
	zone      *string
	deadAfter *time.Duration
	access    etcdAccessFlags
}

func addClusterFlags(fs *flag.FlagSet) clusterFlags {
	return clusterFlags{
		nodeID: fs.Uint64("node-id", 0, "this node's `id` in the cluster (1, 2, …); needs --cluster-etcd"),
		etcd: fs.String("cluster-etcd", "", "`URL[,URL…]` of the etcd that holds the cluster's catalog, membership and placement: "+
			"the node registers there, takes every stream's metadata from it, and holds a Raft replica of each shard placed on it; "+
			"a record is acknowledged once a majority of the shard's replicas have it (docs/CLUSTER.md)"),
		peerAddr: fs.String("peer-addr", "", "`host:port` the other nodes reach this node at, for Raft and forwarded writes (served on --addr's port; with --tls-cert, its host must be one the certificate names); default --addr"),
		replicas: fs.Int("replicas", cluster.DefaultReplicas, "replicas per shard, fixed when the cluster is first created; a node asking for another number is refused"),
		name:     fs.String("cluster-name", cluster.DefaultName, "the cluster's `name`: its keys in etcd are under /sluice/NAME/"),
		zone: fs.String("zone", "", "the failure domain (`name`) this node is in: the controller places no two replicas of a shard in one zone "+
			"while the active nodes span at least --replicas zones"),
		deadAfter: fs.Duration("dead-after", cluster.DefaultDeadAfter, "how long a node may be gone from membership before the controller "+
			"declares it dead and places its replicas on other nodes (when this node is the controller)"),
		access: addEtcdAccessFlags(fs),
	}
}

// clusterConfig is a node's place in a cluster; nil in serveConfig: a single node.
type clusterConfig struct {
	nodeID    uint64
	endpoints []string
	etcd      cluster.Config // the client's, with endpoints, name, TLS and user
	replicas  int
	name      string
	peerAddr  string // "": the listening address
	zone      string
	deadAfter time.Duration
}

func (f clusterFlags) config() (*clusterConfig, error) {
	if *f.etcd == "" {
		if *f.nodeID != 0 || *f.peerAddr != "" || *f.zone != "" || f.access.given() {
			return nil, errors.New("--node-id, --peer-addr, --zone and the --etcd-* flags need --cluster-etcd")
		}
		return nil, nil
	}
	if *f.deadAfter <= 0 {
		return nil, fmt.Errorf("--dead-after %v: want a positive duration", *f.deadAfter)
	}
	if *f.peerAddr != "" {
		if _, _, err := net.SplitHostPort(*f.peerAddr); err != nil {
			return nil, fmt.Errorf("--peer-addr %q: %v", *f.peerAddr, err)
		}
	}
	if *f.nodeID == 0 {
		return nil, errors.New("--cluster-etcd needs --node-id (1 or more)")
	}
	if *f.replicas < 1 {
		return nil, fmt.Errorf("--replicas %d: want at least 1", *f.replicas)
	}
	if *f.name == "" || strings.Contains(*f.name, "/") {
		return nil, fmt.Errorf("--cluster-name %q: want a name without /", *f.name)
	}
	etcd, err := f.access.config(*f.etcd, *f.name)
	if err != nil {
		return nil, err
	}
	return &clusterConfig{nodeID: *f.nodeID, endpoints: etcd.Endpoints, etcd: etcd, replicas: *f.replicas, name: *f.name, peerAddr: *f.peerAddr,
		zone: *f.zone, deadAfter: *f.deadAfter}, nil
}

// joinCluster connects to the cluster's etcd and fixes (or checks) its replication factor.
func joinCluster(cc *clusterConfig, logger *slog.Logger) (*cluster.Client, error) {
	cfg := cc.etcd
	cfg.Logger = logger
	c, err := cluster.Dial(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.EnsureReplicas(cc.replicas); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// startReplication gives the node its Raft id (DATA/node.json), the cluster's peer key, and
// its Raft host following membership.
func startReplication(ctx context.Context, cc *cluster.Client, cfg serveConfig, logger *slog.Logger) (*cluster.Replication, error) {
	if multiraft.RaftPath != server.PeerRaftPath || cluster.ForwardPath != server.PeerForwardPath || cluster.ReadPath != server.PeerReadPath ||
		cluster.SealPath != server.PeerSealPath {
		panic("BUG: the peer routes of cluster and server differ")
	}
	raftID, err := cluster.RaftID(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	key, err := cc.EnsurePeerKey()
	if err != nil {
		return nil, err
	}
	rc := cluster.ReplicationConfig{NodeID: cfg.cluster.nodeID, RaftID: raftID, PeerKey: key, Logger: logger}
	if cfg.certs != nil {
		rc.PeerTLS = cfg.certs.peerTLS // the peers are reached over TLS, as clients reach the node
		warnOwnCert(cfg.certs, logger)
	}
	repl, err := cc.NewReplication(rc)
	if err != nil {
		return nil, err
	}
	if err := repl.Run(ctx); err != nil {
		repl.Close()
		return nil, err
	}
	return repl, nil
}

// peerHost returns the host the other nodes reach a cluster node at: that of --peer-addr,
// else of --addr; "" for a single node.
func peerHost(cfg serveConfig) string {
	if cfg.cluster == nil {
		return ""
	}
	addr := cfg.cluster.peerAddr
	if addr == "" {
		addr = cfg.addr
	}
	host, _, _ := net.SplitHostPort(addr) // both checked by their flags' parsing
	return host
}

// warnOwnCert logs a warning when peers that check certificates as this node does would
// refuse its own (certReloader.checkOwnCert).
func warnOwnCert(certs *certReloader, logger *slog.Logger) {
	if err := certs.checkOwnCert(); err != nil {
		logger.Warn("other nodes checking certificates as this node does will refuse its certificate: check --tls-cert against --peer-ca (or the system roots and --tls-client-ca) and --peer-addr",
			"host", certs.peerHost, "err", err)
	}
}

// handOffTimeout bounds how long a stopping node waits for the leaderships it hands away.
const handOffTimeout = 5 * time.Second

// handOff is a cluster node's first step on SIGTERM or SIGINT, before it leaves membership:
// it marks itself leaving, so that no other node hands it a leadership, and transfers the
// leadership of every group it leads to the other nodes (cluster.Replication.HandOff),
// waiting up to handOffTimeout.
func handOff(m *cluster.Member, repl *cluster.Replication, logger *slog.Logger) {
	if err := m.MarkLeaving(); err != nil {
		logger.Warn("marking the node leaving", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), handOffTimeout)
	defer cancel()
	repl.HandOff(ctx)
}

// controllerMetrics are the controller's figures for the server's /metrics.
func controllerMetrics(ct *cluster.Controller) func() []server.Metric {
	return func() []server.Metric {
		m := ct.Metrics()
		leader := 0.0
		if m.Leader {
			leader = 1
		}
		return []server.Metric{
			{Name: "controller_leader", Help: "1 while this node is the cluster's elected controller, else 0.", Value: leader},
			{Name: "controller_passes_total", Help: "Placement passes this node ran as the controller.", Counter: true, Value: float64(m.Passes)},
			{Name: "controller_placements_total", Help: "Placement records this node wrote as the controller.", Counter: true, Value: float64(m.Placements)},
			{Name: "controller_moves_total", Help: "Replicas this node added to placement records as the controller (each a replica to build).", Counter: true, Value: float64(m.Moves)},
			{Name: "controller_dead_nodes_total", Help: "Nodes this node declared dead as the controller.", Counter: true, Value: float64(m.DeadNodes)},
			{Name: "controller_ondemand_splits_total", Help: "Shards of on-demand streams this node split as the controller, on the demand every node published.", Counter: true, Value: float64(m.OnDemandSplits)},
		}
	}
}

// logMembership logs the nodes up now and every change after, until ctx ends.
func logMembership(ctx context.Context, c *cluster.Client, logger *slog.Logger) {
	nodes, events, err := c.WatchMembers(ctx)
	if err != nil {
		logger.Warn("cluster membership", "err", err)
		return
	}
	for _, n := range nodes {
		logger.Info("cluster node up", "node", n.ID, "addr", n.Addr)
	}
	go func() {
		for ev := range events {
			logger.Info("cluster "+ev.Kind.String(), "node", ev.Node.ID, "addr", ev.Node.Addr)
		}
	}()
}

// devClusterConfig is what `sluice dev-cluster` was asked to do.
type devClusterConfig struct {
	nodes    int
	dataDir  string
	replicas int
	zones    int  // > 0: node N is in zone-((N-1) mod zones + 1)
	tls      bool // the nodes serve TLS with certificates of a throwaway CA (DIR/tls)
	// serveArgs are passed to every node's serve after the cluster flags.
	serveArgs []string
}

func runDevCluster(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dev-cluster", "[flags] [-- serve flags]", stderr)
	nodes := fs.Int("nodes", 3, "`number` of nodes")
	dataDir := fs.String("data-dir", "./cluster-data", "`directory` holding etcd's data (etcd/) and each node's (node-N/)")
	replicas := fs.Int("replicas", cluster.DefaultReplicas, "replicas per shard, fixed when the cluster is first created")
	zones := fs.Int("zones", 0, "spread the nodes over this `number` of zones (--zone zone-1, zone-2, … in turn); 0: no zones")
	useTLS := fs.Bool("tls", false, "make a throwaway CA and a certificate of it for each node in DATA-DIR/tls: clients and nodes speak TLS; clients check the nodes against DATA-DIR/tls/ca.pem")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	if *nodes < 1 || *zones < 0 {
		fmt.Fprintf(stderr, "sluice dev-cluster: --nodes %d --zones %d: want at least 1 node and no negative zones\n", *nodes, *zones)
		return exitUsage
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sluice dev-cluster: %v\n", err)
		return exitError
	}
	spawn := func(args ...string) *exec.Cmd { return exec.Command(self, args...) }
	cfg := devClusterConfig{nodes: *nodes, dataDir: *dataDir, replicas: *replicas, zones: *zones, tls: *useTLS, serveArgs: fs.Args()}
	if err := devCluster(ctx, cfg, spawn, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "sluice dev-cluster: %v\n", err)
		return exitError
	}
	return exitOK
}

// devCluster runs an embedded etcd on loopback and cfg.nodes `sluice serve` child processes
// (made by spawn) joined to it, until ctx ends (nil) or a node exits on its own (an error).
// Every node is stopped with SIGTERM, then etcd.
func devCluster(ctx context.Context, cfg devClusterConfig, spawn func(args ...string) *exec.Cmd, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return err
	}
	scheme, certs := "http", devTLSFiles{dir: filepath.Join(cfg.dataDir, "tls")}
	if cfg.tls {
		if err := writeDevTLS(certs, cfg.nodes); err != nil {
			return err
		}
		scheme = "https"
	}
	etcd, err := cluster.StartEmbedded(cluster.EmbeddedConfig{Dir: filepath.Join(cfg.dataDir, "etcd")})
	if err != nil {
		return err
	}
	defer etcd.Close()
	endpoint := etcd.Endpoints()[0]
	fmt.Fprintf(stdout, "sluice dev-cluster: etcd on %s\n", endpoint)

	var out sync.Mutex // serialises the lines the nodes' output is copied in
	type child struct {
		id     int
		addr   string
		cmd    *exec.Cmd
		exited chan struct{}
	}
	var children []*child
	stop := func() {
		for _, c := range children {
			c.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			select {
			case <-c.exited:
			case <-time.After(15 * time.Second):
				c.cmd.Process.Kill()
				<-c.exited
			}
		}
	}
	died := make(chan *child, cfg.nodes)
	ready := make(chan int, cfg.nodes)
	for i := 1; i <= cfg.nodes; i++ {
		addr, err := freeLoopbackAddr()
		if err != nil {
			stop()
			return err
		}
		args := []string{"serve", "--node-id", strconv.Itoa(i), "--cluster-etcd", endpoint, "--replicas", strconv.Itoa(cfg.replicas),
			"--addr", addr, "--data-dir", filepath.Join(cfg.dataDir, fmt.Sprintf("node-%d", i))}
		if cfg.zones > 0 {
			args = append(args, "--zone", fmt.Sprintf("zone-%d", (i-1)%cfg.zones+1))
		}
		if cfg.tls {
			args = append(args, certs.serveArgs(i)...)
		}
		args = append(args, cfg.serveArgs...)
		cmd := spawn(args...)
		cmd.Stderr = prefixWriter(stderr, &out, fmt.Sprintf("node-%d: ", i))
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			stop()
			return err
		}
		if err := cmd.Start(); err != nil {
			stop()
			return err
		}
		c := &child{id: i, addr: addr, cmd: cmd, exited: make(chan struct{})}
		children = append(children, c)
		go func() {
			lines := bufio.NewScanner(pipe)
			for lines.Scan() {
				if strings.HasPrefix(lines.Text(), "sluice: serving") {
					ready <- c.id
				}
				out.Lock()
				fmt.Fprintf(stdout, "node-%d: %s\n", c.id, lines.Text())
				out.Unlock()
			}
			cmd.Wait()
			close(c.exited)
			died <- c
		}()
	}
	for up := 0; up < cfg.nodes; {
		select {
		case <-ready:
			up++
		case c := <-died:
			stop()
			return fmt.Errorf("node %d exited before it served: %v", c.id, c.cmd.ProcessState)
		case <-ctx.Done():
			stop()
			return nil
		}
	}
	out.Lock()
	for _, c := range children {
		fmt.Fprintf(stdout, "sluice dev-cluster: node %d: %s://%s\n", c.id, scheme, c.addr)
	}
	if cfg.tls {
		fmt.Fprintf(stdout, "sluice dev-cluster: the nodes' certificates are signed by the CA in %s\n", certs.ca())
	}
	fmt.Fprintf(stdout, "sluice dev-cluster: %d nodes up; Ctrl-C stops them all\n", cfg.nodes)
	out.Unlock()
	select {
	case <-ctx.Done():
		stop()
		return nil
	case c := <-died:
		stop()
		return fmt.Errorf("node %d exited: %v; stopped the others", c.id, c.cmd.ProcessState)
	case err := <-etcd.Err():
		stop()
		return fmt.Errorf("etcd: %v", err)
	}
}

// prefixWriter copies what is written to it to w line by line, each line prefixed.
func prefixWriter(w io.Writer, mu *sync.Mutex, prefix string) io.Writer {
	r, pw := io.Pipe()
	go func() {
		lines := bufio.NewScanner(r)
		for lines.Scan() {
			mu.Lock()
			fmt.Fprintf(w, "%s%s\n", prefix, lines.Text())
			mu.Unlock()
		}
	}()
	return pw
}

// freeLoopbackAddr returns 127.0.0.1:PORT for a port free a moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
