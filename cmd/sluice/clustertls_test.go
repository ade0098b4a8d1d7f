package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kds "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/internal/pki"
)

// writeNodeCert writes to certFile and keyFile a cluster node's certificate signed by ca:
// for 127.0.0.1, valid for serving and, towards the peers that ask for one, as a client
// certificate.
func writeNodeCert(t *testing.T, ca *testCA, name, certFile, keyFile string) {
	t.Helper()
	writeCertKey(t, sign(t, ca, pki.Template(name, time.Hour, []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)), certFile, keyFile)
}

// peerGet GETs /healthz of the server at host:port with the peer client configuration
// cfg, on a connection of its own, and returns the error, or nil for a 200.
func peerGet(cfg *tls.Config, hostPort string) error {
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + hostPort + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// TestPeerTLSConfig checks the TLS client configuration a cluster node reaches its peers
// with, against a server asking clients for a certificate of CA A (--tls-client-ca), whose
// own certificate A signed for 127.0.0.1. By default (the system roots and
// --tls-client-ca's CAs) the node verifies that server and presents its own certificate,
// which the server accepts; the certificate must name the host dialled (localhost is not
// 127.0.0.1). With a --peer-ca of another CA the server is refused until the file holds A
// and is reloaded; a --peer-ca that fails to load leaves the CAs loaded before in service.
// --peer-ca needs --cluster-etcd and --tls-cert. checkOwnCert (the warning at start and
// reload) finds what would make peers refuse the node's own certificate: a peer host it
// does not name, another CA, no clientAuth usage with --tls-client-ca.
func TestPeerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	caA, caB := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	certFile, keyFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	caFile, peerCAFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "peer-ca.pem")
	writeNodeCert(t, caA, "node", certFile, keyFile)
	if err := os.WriteFile(caFile, caA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(peerCAFile, caB.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _ := startTLSServe(t, certFile, keyFile, caFile)
	_, port, _ := net.SplitHostPort(addr)

	_, certs, err := loadTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if certs.peerTLS() != nil {
		t.Fatal("a peer configuration before usePeerTLS")
	}
	if err := usePeerTLS(certs, true, "", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := peerGet(certs.peerTLS(), addr); err != nil {
		t.Fatalf("default peer CAs: %v", err)
	}
	var wrongHost x509.HostnameError
	if err := peerGet(certs.peerTLS(), net.JoinHostPort("localhost", port)); !errors.As(err, &wrongHost) {
		t.Fatalf("a host the certificate does not name: %v, want a hostname error", err)
	}
	for _, tt := range []struct {
		host string
		ok   bool
	}{{"127.0.0.1", true}, {"0.0.0.0", true}, {"localhost", false}} {
		certs.peerHost = tt.host
		if err := certs.checkOwnCert(); (err == nil) != tt.ok || err != nil && !errors.As(err, &wrongHost) {
			t.Errorf("checkOwnCert for peer host %s: %v", tt.host, err)
		}
	}
	serverOnlyCert, serverOnlyKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writeServerCert(t, caA, "server only", serverOnlyCert, serverOnlyKey)
	_, serverOnly, err := loadTLS(serverOnlyCert, serverOnlyKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := usePeerTLS(serverOnly, true, "", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	var invalid x509.CertificateInvalidError
	if err := serverOnly.checkOwnCert(); !errors.As(err, &invalid) || invalid.Reason != x509.IncompatibleUsage {
		t.Fatalf("checkOwnCert of a certificate without clientAuth, with --tls-client-ca: %v", err)
	}

	_, other, err := loadTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := usePeerTLS(other, true, peerCAFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if err := peerGet(other.peerTLS(), addr); !errors.As(err, &unknown) {
		t.Fatalf("--peer-ca of another CA: %v, want an unknown authority", err)
	}
	if err := other.checkOwnCert(); !errors.As(err, &unknown) {
		t.Fatalf("checkOwnCert with --peer-ca of another CA: %v, want an unknown authority", err)
	}
	if err := os.WriteFile(peerCAFile, caA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := other.load(); err != nil {
		t.Fatal(err)
	}
	if err := peerGet(other.peerTLS(), addr); err != nil {
		t.Fatalf("--peer-ca reloaded with the cluster CA: %v", err)
	}
	if err := os.WriteFile(peerCAFile, []byte("no certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := other.load(); err == nil || !strings.Contains(err.Error(), "--peer-ca") {
		t.Fatalf("loading a --peer-ca without a certificate: %v", err)
	}
	if err := peerGet(other.peerTLS(), addr); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}

	for _, tt := range []struct {
		certs   *certReloader
		cluster bool
		peerCA  string
		ok      bool
	}{
		{nil, false, "", true},
		{nil, true, "", true},
		{certs, false, "", true},
		{nil, true, peerCAFile, false},
		{certs, false, peerCAFile, false},
	} {
		if err := usePeerTLS(tt.certs, tt.cluster, tt.peerCA, "127.0.0.1"); (err == nil) != tt.ok {
			t.Errorf("usePeerTLS(certs %v, cluster %v, %q): %v", tt.certs != nil, tt.cluster, tt.peerCA, err)
		}
	}
}

// TestClusterTLS runs three `sluice serve` nodes on one etcd with --tls-cert, --tls-key and
// --tls-client-ca, each with its own certificate of one cluster CA for 127.0.0.1, and no
// --peer-ca (the nodes check each other against --tls-client-ca's CA). The AWS SDK for Go
// v2, over HTTPS with a client certificate of that CA, creates a stream through node 1 and
// puts records through node 1 once node 2 or 3 leads some of its shards: every record is
// acknowledged, node 1's sluice_forwarded_records_total counts those it forwarded over TLS,
// and node 3 reads every record back; no node warns that its certificate would be refused.
// The peer path refuses a TLS client whose certificate another CA signed, while one of the
// cluster CA gets an HTTP answer (a refusal: it did not sign with the peer key).
func TestClusterTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "cluster CA"), newTestCA(t, "rogue CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	_, nodes := startNodes(t, func(id int) []string {
		certFile, keyFile := filepath.Join(dir, fmt.Sprintf("node-%d.pem", id)), filepath.Join(dir, fmt.Sprintf("node-%d-key.pem", id))
		writeNodeCert(t, ca, fmt.Sprintf("node %d", id), certFile, keyFile)
		return []string{"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile, "--limits", "off"}
	})
	_, _, app := issue(t, ca, "app", false, true)
	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{app}}}}
	sdk := make([]*kds.Client, len(nodes))
	for i, n := range nodes {
		n.tls = hc
		sdk[i] = sdkOver(n.base(), hc)
	}
	ctx := context.Background()
	const name, shards = "secure", 3
	if _, err := sdk[0].CreateStream(ctx, &kds.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("CreateStream through node 1: %v", err)
	}
	for i, n := range nodes {
		waitLong(t, fmt.Sprintf("stream active on node %d", n.id), func() bool {
			d, err := sdk[i].DescribeStreamSummary(ctx, &kds.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			return err == nil && d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
		})
	}
	var node1Leads map[string]bool
	waitLong(t, "every shard led, some by node 2 or 3", func() bool {
		led := map[string]int{}
		for _, n := range nodes {
			for _, sh := range n.leads() {
				led[sh] = n.id
			}
		}
		node1Leads = map[string]bool{}
		for _, sh := range nodes[0].leads() {
			node1Leads[sh] = true
		}
		return len(led) == shards && len(node1Leads) < shards
	})
	t.Logf("node 1 leads %v", nodes[0].leads())

	want := putRecordsSDK(t, sdk[0], name, 60)
	elsewhere := 0
	for sh, recs := range want {
		if !node1Leads[sh] {
			elsewhere += len(recs)
		}
	}
	if elsewhere == 0 {
		t.Fatalf("no record landed on a shard node 1 does not lead (%v): nothing was forwarded", want)
	}
	if got := forwardedRecords(t, nodes[0]); got == 0 {
		t.Fatalf("node 1's sluice_forwarded_records_total is %v after %d records put on shards others lead", got, elsewhere)
	}
	readBackSDK(t, sdk[2], name, want)
	for _, n := range nodes {
		n.mu.Lock()
		for _, l := range n.warns {
			if strings.Contains(l, "refuse its certificate") {
				t.Errorf("node %d: %s", n.id, l)
			}
		}
		n.mu.Unlock()
	}

	// The peer path, over TLS: a client certificate of another CA is refused in the
	// handshake; one of the cluster CA is answered.
	_, _, stranger := issue(t, rogue, "stranger", false, true)
	peerPost := func(cert tls.Certificate) (int, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{cert}}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Post("https://"+nodes[1].addr+cluster.ForwardPath,
			"application/octet-stream", strings.NewReader("x"))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := peerPost(stranger); err == nil {
		t.Fatalf("a client certificate of another CA got %d on node 2's peer path", status)
	} else {
		t.Logf("a client certificate of another CA on the peer path: %v", err)
	}
	if status, err := peerPost(app); err != nil || status/100 == 2 {
		t.Fatalf("an unsigned peer request with a certificate of the cluster CA: %d, %v; want a refusal in HTTP", status, err)
	}
}

// putRecordsSDK puts n records (key-I, "record I") into stream name through c, again for
// those refused (a leadership changing hands), until every one is acknowledged (bounded by
// waitLong). It returns the data acknowledged by shard and sequence number.
func putRecordsSDK(t *testing.T, c *kds.Client, name string, n int) map[string]map[string]string {
	t.Helper()
	want := map[string]map[string]string{}
	pending := make([]types.PutRecordsRequestEntry, n)
	for i := range pending {
		pending[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i)), Data: []byte(fmt.Sprintf("record %d", i))}
	}
	waitLong(t, "every record acknowledged", func() bool {
		out, err := c.PutRecords(context.Background(), &kds.PutRecordsInput{StreamName: aws.String(name), Records: pending})
		if err != nil {
			return false
		}
		var again []types.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				again = append(again, pending[i])
				continue
			}
			sh := aws.ToString(r.ShardId)
			if want[sh] == nil {
				want[sh] = map[string]string{}
			}
			want[sh][aws.ToString(r.SequenceNumber)] = string(pending[i].Data)
		}
		pending = again
		return len(pending) == 0
	})
	return want
}

// readBackSDK reads every shard of want from TRIM_HORIZON through c until it has read as
// many records as want holds (bounded by waitLong), and fails unless each acknowledged
// record was read with its data.
func readBackSDK(t *testing.T, c *kds.Client, name string, want map[string]map[string]string) {
	t.Helper()
	ctx := context.Background()
	for sh, recs := range want {
		it, err := c.GetShardIterator(ctx, &kds.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(sh),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("GetShardIterator %s: %v", sh, err)
		}
		iter, read := it.ShardIterator, map[string]string{}
		waitLong(t, fmt.Sprintf("%d records of %s read", len(recs), sh), func() bool {
			out, err := c.GetRecords(ctx, &kds.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				return false
			}
			for _, r := range out.Records {
				read[aws.ToString(r.SequenceNumber)] = string(r.Data)
			}
			iter = out.NextShardIterator
			return len(read) >= len(recs)
		})
		for seq, data := range recs {
			if read[seq] != data {
				t.Fatalf("%s %s: read %q, acknowledged %q", sh, seq, read[seq], data)
			}
		}
	}
}

// sdkOver is an AWS SDK client of the node at base, through hc, signing with a key no
// --iam file holds (the default account).
func sdkOver(base string, hc *http.Client) *kds.Client {
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDAPP", SecretAccessKey: "secret"}, nil
	})
	return kds.New(kds.Options{Region: "us-east-1", BaseEndpoint: aws.String(base), Credentials: creds, HTTPClient: hc, RetryMaxAttempts: 1})
}

// TestDevClusterTLS runs `sluice dev-cluster --tls` with three nodes: it prints https
// endpoints and the CA file, DIR/tls holds the CA's certificate and each node's certificate
// and key (0600) but no key of the CA, and the AWS SDK, checking the nodes against that CA
// and presenting no certificate, creates a stream through node 1, puts records through
// node 1 and reads them back through node 3 (the nodes checking each other with --peer-ca).
func TestDevClusterTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- devCluster(ctx, devClusterConfig{nodes: 3, dataDir: dir, replicas: 3, tls: true}, sluiceCmd, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev-cluster: %v", err)
		}
	}()
	endpoint := regexp.MustCompile(`^sluice dev-cluster: node \d: (https://\S+)$`)
	caLine := regexp.MustCompile(`^sluice dev-cluster: the nodes' certificates are signed by the CA in (\S+)$`)
	var nodes []string
	var caFile string
	lines := bufio.NewScanner(pr)
	for caFile == "" && lines.Scan() {
		if m := endpoint.FindStringSubmatch(lines.Text()); m != nil {
			nodes = append(nodes, m[1])
		}
		if m := caLine.FindStringSubmatch(lines.Text()); m != nil {
			caFile = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if len(nodes) != 3 || caFile != filepath.Join(dir, "tls", "ca.pem") {
		t.Fatalf("dev-cluster printed endpoints %v and CA file %q", nodes, caFile)
	}
	files, err := os.ReadDir(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
		if info, err := f.Info(); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", f.Name(), info.Mode(), err)
		}
	}
	if want := []string{"ca.pem", "node-1-key.pem", "node-1.pem", "node-2-key.pem", "node-2.pem", "node-3-key.pem", "node-3.pem"}; !slices.Equal(names, want) {
		t.Fatalf("DIR/tls holds %v, want %v", names, want)
	}
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	first, third := sdkOver(nodes[0], hc), sdkOver(nodes[2], hc)
	const name = "dev"
	if _, err := first.CreateStream(ctx, &kds.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("CreateStream through node 1: %v", err)
	}
	waitLong(t, "the stream active on node 3", func() bool {
		d, err := third.DescribeStreamSummary(ctx, &kds.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		return err == nil && d.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
	readBackSDK(t, third, name, putRecordsSDK(t, first, name, 20))
}
