package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/account"
	"github.com/sluice-streams/sluice/audit"
	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// maintainEvery is how often the server runs the engine's periodic work (retention,
// on-demand scaling, unmapping idle segments).
const maintainEvery = 5 * time.Second

// testRetentionHourEnv names the environment variable that shortens one hour of retention to
// a duration, such as 1s, so that a soak test sees retention delete segments within minutes
// (docs/OPERATIONS.md). Tests only: a stream then loses records after 24 of these.
const testRetentionHourEnv = "SLUICE_TEST_RETENTION_HOUR"

// serveConfig is what `sluice serve` was asked to do.
type serveConfig struct {
	addr       string
	dataDir    string
	durability segment.Durability
	limits     stream.Limits
	region     string
	account    string
	tls        *tls.Config    // nil: plaintext
	certs      *certReloader  // the certificate of tls, reloaded on SIGHUP; nil: plaintext
	conns      connLimits     // what clients may make the server hold
	accessKeys accessKeys     // access key → account, for the SigV4 parser
	iamFile    string         // users whose signatures are verified; "" serves without authentication
	cluster    *clusterConfig // nil: a single node
	keyring    string         // --kms-keyring; "": <data-dir>/kms-keyring
	audit      auditConfig

	segmentSize int64 // the shard logs' segment size; 0: the engine's default (segment.SizeFor)
	shardLimit  int   // the account's shard limit; 0: the engine's default (stream.DefaultShardLimit)
	// retentionHour is how long an hour of retention lasts; 0: an hour (testRetentionHourEnv).
	retentionHour time.Duration
}

// auditConfig is what --audit-log, --audit-data and --audit-max-bytes ask for.
type auditConfig struct {
	dir      string // "": no audit log
	data     bool
	maxBytes int64
}

// runServe runs the server until SIGINT or SIGTERM, then shuts it down gracefully: it stops
// accepting, finishes the requests in flight, and closes the engine (every shard log synced
// and marked clean).
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", stderr)
	addr := fs.String("addr", "127.0.0.1:4567", "`host:port` to listen on (Kinesis API)")
	dataDir := fs.String("data-dir", "./data", "`directory` holding the catalog and the shard logs")
	durability := fs.String("durability", "sync", "acknowledgement `mode`: sync, interval=T (such as interval=200ms) or none; see README.md")
	limits := fs.String("limits", "kinesis", "per-shard capacity `profile`: kinesis, scaled:N or off")
	var segSize byteSize
	fs.Var(&segSize, "segment-size", "preallocated `size` of a shard's segment files, such as 8MiB; default 128MiB, or 1/16 of a smaller file system (see docs/OPERATIONS.md)")
	shardLimit := fs.Int("shard-limit", stream.DefaultShardLimit, "the account's shard limit: `N` open shards of all streams together, beyond which CreateStream and resharding are refused with LimitExceededException, as in Kinesis")
	region := fs.String("region", "us-east-1", "`region` in ARNs")
	account := fs.String("account", "000000000000", "`account` id in ARNs")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `file` (chain first) to serve HTTPS with; needs --tls-key")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` of --tls-cert; both are reloaded on SIGHUP")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM `file` of CA certificates: clients must present a certificate signed by one of them (needs --tls-cert)")
	peerCA := fs.String("peer-ca", "", "PEM `file` of the CA certificates the other nodes' certificates are checked against, with --cluster-etcd and --tls-cert; default: the system roots and --tls-client-ca (see docs/CLUSTER.md)")
	conns := addConnLimitFlags(fs)
	keys := accessKeys{}
	fs.Var(keys, "access-key", "`KEY=ACCOUNT`: requests signed with access key KEY belong to ACCOUNT (repeatable; a request of an account other than --account is refused); without --iam only")
	keyringDir := fs.String("kms-keyring", "", "`directory` of the master keys StartStreamEncryption's key ids name (created 0700 on first use); default DATA-DIR/kms-keyring; with --cluster-etcd the master keys are the cluster's, in etcd, and this directory caches them")
	iamFile := fs.String("iam", "", "IAM `file` (JSON) of the users whose SigV4 signatures are verified and whose policies authorise every request; reloaded on SIGHUP (see docs/API.md, Authentication and Authorisation)")
	insecure := fs.Bool("insecure-no-auth", false, "serve an address other than loopback without --iam: anyone reaching the port may read, write and delete every stream")
	fs.String("config", "", "`file` of flag = value lines (flags and SLUICE_* environment variables override it)")
	cflags := addClusterFlags(fs)
	auditDir := fs.String("audit-log", "", "`directory` of the audit log: a CloudTrail-style JSON line for every control-plane call, synced before the answer (see docs/SECURITY.md)")
	auditData := fs.Bool("audit-data", false, "with --audit-log, log the data-plane calls too (PutRecord(s), GetRecords, GetShardIterator, SubscribeToShard, native put/get/subscribe)")
	auditMax := fs.Int64("audit-max-bytes", audit.DefaultMaxBytes, "with --audit-log, the `size` in bytes past which the next audit file begins")
	prof := fs.String("profile", "", profileUsage)
	if err := applySettings(fs, args, os.Getenv); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	stopProfile, ok := startProfile("serve", *prof, stderr)
	if !ok {
		return exitUsage
	}
	defer stopProfile()
	cfg, err := newServeConfig(*addr, *dataDir, *durability, *limits)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	cfg.region, cfg.account, cfg.accessKeys, cfg.iamFile = *region, *account, keys, *iamFile
	cfg.audit = auditConfig{dir: *auditDir, data: *auditData, maxBytes: *auditMax}
	if cfg.audit.dir == "" && cfg.audit.data || cfg.audit.maxBytes <= 0 {
		fmt.Fprintln(stderr, "sluice serve: --audit-data needs --audit-log, and --audit-max-bytes must be positive")
		return exitUsage
	}
	cfg.segmentSize = int64(segSize)
	if cfg.shardLimit = *shardLimit; cfg.shardLimit <= 0 {
		fmt.Fprintln(stderr, "sluice serve: --shard-limit must be positive")
		return exitUsage
	}
	if v := os.Getenv(testRetentionHourEnv); v != "" {
		if cfg.retentionHour, err = time.ParseDuration(v); err != nil || cfg.retentionHour <= 0 {
			fmt.Fprintf(stderr, "sluice serve: %s=%q: want a positive duration such as 1s\n", testRetentionHourEnv, v)
			return exitUsage
		}
	}
	cfg.keyring = *keyringDir
	cfg.conns = *conns
	if err := checkAuth(cfg.addr, cfg.iamFile, *insecure, len(keys) > 0); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	if cfg.cluster, err = cflags.config(); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	if cfg.tls, cfg.certs, err = loadTLS(*tlsCert, *tlsKey, *tlsClientCA); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	if err := usePeerTLS(cfg.certs, cfg.cluster != nil, *peerCA, peerHost(cfg)); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitError
	}
	return exitOK
}

// serve runs the server until ctx is done.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return err
	}
	opts := stream.Options{Dir: cfg.dataDir, Logger: logger, Durability: cfg.durability,
		Limits: cfg.limits, Region: cfg.region, Account: cfg.account, Holder: "sluice serve",
		SegmentSize: cfg.segmentSize, KeyringDir: cfg.keyring, RetentionHour: cfg.retentionHour, ShardLimit: cfg.shardLimit}
	if cfg.retentionHour != 0 {
		logger.Warn("test setting: an hour of retention lasts "+cfg.retentionHour.String(), "env", testRetentionHourEnv)
	}
	var cc *cluster.Client
	var repl *cluster.Replication
	// The node's membership and Raft host follow runCtx, which outlives ctx: a stopping
	// node still hands its leaderships away (handOff) after the signal.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	if cfg.cluster != nil {
		var err error
		if cc, err = joinCluster(cfg.cluster, logger); err != nil {
			return err
		}
		defer cc.Close()
		if repl, err = startReplication(runCtx, cc, cfg, logger); err != nil {
			return err
		}
		defer repl.Close() // also closed, earlier, before the engine
		opts.Catalog = cc.Catalog()
		opts.SharedDemand = true // the elected controller scales on-demand streams (cluster/demand.go)
		opts.OpenShardLog = repl.OpenShardLog
		if opts.IteratorKey, err = cc.EnsureIteratorKey(); err != nil {
			return err
		}
		// The master keys are the cluster's, in etcd; the keyring directory caches them.
		cache := cfg.keyring
		if cache == "" {
			cache = filepath.Join(cfg.dataDir, "kms-keyring")
		}
		if opts.KeyStore, err = cc.KeyringStore(cache); err != nil {
			return err
		}
	}
	eng, err := stream.Open(opts)
	if err != nil {
		return err
	}
	var peer server.Peer
	var ctl *cluster.Controller
	var metrics func() []server.Metric
	if repl != nil {
		repl.SetEngine(eng)
		peer = repl
		if ctl, err = cc.NewController(cluster.ControllerConfig{NodeID: cfg.cluster.nodeID, DeadAfter: cfg.cluster.deadAfter, Scaler: eng}); err != nil {
			eng.Close()
			return err
		}
		metrics = clusterMetrics(ctl, repl, logger)
	}
	var acct *account.Account
	if cc != nil {
		acct, err = account.OpenStore(eng, cc.AccountStore())
	} else {
		acct, err = account.Open(eng)
	}
	if err != nil {
		eng.Close()
		return err
	}
	defer acct.Close() // on the returns below; Close may be called again
	var auth server.Authenticator = server.SigV4Parser{Default: cfg.account, Accounts: cfg.accessKeys}
	var verifier *server.SigV4Verifier
	if cfg.iamFile != "" {
		users, err := loadIAM(cfg.iamFile, cfg.account)
		if err != nil {
			eng.Close()
			return err
		}
		verifier = server.NewSigV4Verifier(cfg.account, cfg.region, users)
		auth = verifier
		logger.Info("verifying SigV4 signatures and authorising requests", "iam", cfg.iamFile, "users", len(users))
	}
	// SIGHUP reloads what can be reloaded and starts new data keys of encrypted streams
	// (after a master key's rotation); it never ends the process, the default action of an
	// unhandled SIGHUP.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var auditLog *audit.Writer
	if cfg.audit.dir != "" {
		if auditLog, err = audit.Open(cfg.audit.dir, audit.Options{MaxBytes: cfg.audit.maxBytes, Logger: logger}); err != nil {
			eng.Close()
			return err
		}
		defer auditLog.Close() // after Shutdown: the calls in flight are logged first
		logger.Info("audit log", "dir", cfg.audit.dir, "data_plane", cfg.audit.data)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		eng.Close()
		return err
	}
	srv := server.New(eng, cfg.conns.options(server.Options{Logger: logger, TLSConfig: cfg.tls, Account: acct, Authenticator: auth,
		Audit: auditLog, AuditData: cfg.audit.data, Peer: peer, Metrics: metrics}))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	scheme := "http"
	if cfg.tls != nil {
		scheme = "https"
	}
	var member *cluster.Member
	stopController := func() {}
	if cc != nil {
		if member, err = cc.JoinNode(runCtx, cluster.Node{ID: cfg.cluster.nodeID, Addr: ln.Addr().String(),
			RaftID: repl.RaftID(), PeerAddr: cfg.cluster.peerAddr, Zone: cfg.cluster.zone}); err != nil {
			srv.Shutdown()
			repl.Close()
			eng.Close()
			return err
		}
		logMembership(ctx, cc, logger)
		ctlCtx, stopCtl := context.WithCancel(ctx)
		ctlDone := make(chan struct{})
		go func() {
			defer close(ctlDone)
			pub := member.NewDemandPublisher(eng, nil)
			published := make(chan struct{})
			go func() { defer close(published); pub.Run(ctlCtx, maintainEvery) }()
			ctl.Run(ctlCtx)
			<-published
		}()
		defer func() { stopCtl(); <-ctlDone }() // normally already stopped, below
		stopController = func() { stopCtl(); <-ctlDone }
		fmt.Fprintf(stdout, "sluice: node %d (raft id %d) of cluster %q (etcd %s; every shard replicated by Raft on its placed nodes)\n",
			cfg.cluster.nodeID, repl.RaftID(), cfg.cluster.name, strings.Join(cfg.cluster.endpoints, ","))
	}
	fmt.Fprintf(stdout, "sluice: serving the Kinesis API on %s://%s (data in %s, durability %s, limits %s)\n",
		scheme, ln.Addr(), cfg.dataDir, cfg.durability, cfg.limits)
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case serveErr = <-errc:
			break loop
		case <-tick.C:
			if err := eng.Maintain(); err != nil {
				logger.Warn("periodic maintenance", "err", err)
			}
		case <-hup:
			reload(cfg, eng, verifier, logger)
		}
	}
	logger.Info("shutting down")
	stopController() // resigns, so another node takes over at once
	if member != nil {
		handOff(member, repl, logger)
		if err := member.Leave(); err != nil {
			logger.Warn("leaving the cluster", "err", err)
		}
	}
	if err := srv.Shutdown(); err != nil && serveErr == nil {
		serveErr = err
	}
	if repl != nil {
		repl.Close() // the Raft loop stops before the engine closes the replicas it drives
	}
	acct.Close() // stops following the cluster's account settings before the engine closes
	if err := eng.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	if errors.Is(serveErr, net.ErrClosed) {
		serveErr = nil
	}
	return serveErr
}

func newServeConfig(addr, dataDir, durability, limits string) (serveConfig, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return serveConfig{}, fmt.Errorf("--addr %q: %v", addr, err)
	}
	if dataDir == "" {
		return serveConfig{}, fmt.Errorf("--data-dir must not be empty")
	}
	d, err := segment.ParseDurability(durability)
	if err != nil {
		return serveConfig{}, fmt.Errorf("--durability: %v", err)
	}
	l, err := stream.ParseLimits(limits)
	if err != nil {
		return serveConfig{}, fmt.Errorf("--limits: %v", err)
	}
	return serveConfig{addr: addr, dataDir: dataDir, durability: d, limits: l, conns: defaultConnLimits()}, nil
}

// loadIAM reads and parses the IAM file of --iam.
func loadIAM(path, account string) ([]server.User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--iam: %v", err)
	}
	users, err := server.ParseIAM(data, account)
	if err != nil {
		return nil, fmt.Errorf("--iam %s: %v", path, err)
	}
	return users, nil
}

// checkAuth refuses to serve an address other than loopback without authentication, unless
// told to with --insecure-no-auth; and --access-key, which maps keys without verifying them,
// together with --iam.
func checkAuth(addr, iamFile string, insecure, accessKeys bool) error {
	if iamFile != "" && accessKeys {
		return errors.New("--access-key maps unverified keys: with --iam, give each user's account in the IAM file instead")
	}
	if iamFile != "" || insecure || loopback(addr) {
		return nil
	}
	return fmt.Errorf("--addr %s is not a loopback address: give --iam FILE to verify request signatures, or --insecure-no-auth to let anyone who reaches the port read, write and delete every stream", addr)
}

// loopback reports whether addr's host is a loopback address or "localhost".
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// reload loads again, on SIGHUP, the IAM file, the TLS certificate and the client CAs the
// server was given; one that fails to load leaves what was loaded before in service, and
// the log says why. It also makes every encrypted stream seal its next records under a new
// data key, which the newest version of its master key wraps: `sluice rotate-key` followed
// by SIGHUP rotates the keys of a running server.
func reload(cfg serveConfig, eng *stream.Engine, verifier *server.SigV4Verifier, logger *slog.Logger) {
	eng.RenewDataKeys()
	logger.Info("encrypted streams seal their next records under new data keys, wrapped by the newest version of their master keys")
	if verifier != nil {
		if users, err := loadIAM(cfg.iamFile, cfg.account); err != nil {
			logger.Warn("IAM file not reloaded: keeping the users loaded before", "err", err)
		} else {
			verifier.SetUsers(users)
			logger.Info("IAM file reloaded", "iam", cfg.iamFile, "users", len(users))
		}
	}
	if cfg.certs != nil {
		if err := cfg.certs.load(); err != nil {
			logger.Warn("TLS certificate not reloaded: keeping the one loaded before", "err", err)
		} else {
			logger.Info("TLS certificate reloaded", "cert", cfg.certs.certFile, "client_ca", cfg.certs.caFile, "peer_ca", cfg.certs.peerCAFile)
			warnOwnCert(cfg.certs, logger)
		}
	}
}

// A node's Replication answers the native leaders request, through which the Go client sends
// each shard's records straight to its leader.
var _ server.LeaderLocator = (*cluster.Replication)(nil)
