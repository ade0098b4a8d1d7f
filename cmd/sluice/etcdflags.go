package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sluice-streams/sluice/cluster"
)

// etcdPasswordEnv names the environment variable that holds the password of --etcd-user.
// The password is never a flag's value: the command line shows in ps.
const etcdPasswordEnv = "SLUICE_ETCD_PASSWORD"

// etcdAccessFlags are how every verb that takes --cluster-etcd reaches an etcd run with TLS
// (--cert-file, --key-file), client certificates (--client-cert-auth, --trusted-ca-file)
// or authentication (etcdctl auth enable).
type etcdAccessFlags struct {
	ca, cert, key, user, passwordFile *string
}

func addEtcdAccessFlags(fs *flag.FlagSet) etcdAccessFlags {
	return etcdAccessFlags{
		ca:   fs.String("etcd-ca", "", "PEM `file` of the CAs that signed etcd's certificate, for https:// --cluster-etcd endpoints; default the system's roots"),
		cert: fs.String("etcd-cert", "", "PEM `file` of the client certificate to present to an etcd run with --client-cert-auth; needs --etcd-key"),
		key:  fs.String("etcd-key", "", "PEM `file` of --etcd-cert's private key"),
		user: fs.String("etcd-user", "", "etcd user `name` to authenticate as, with the password in $"+etcdPasswordEnv+" or --etcd-password-file"),
		passwordFile: fs.String("etcd-password-file", "", "`file` holding --etcd-user's password (one line); instead of $"+
			etcdPasswordEnv),
	}
}

// given reports whether any of the flags is set.
func (f etcdAccessFlags) given() bool {
	return *f.ca != "" || *f.cert != "" || *f.key != "" || *f.user != "" || *f.passwordFile != ""
}

// config returns the configuration of a client of cluster name on the etcd at etcd (a
// comma-separated list of URLs), with the TLS and user the flags give. A file that does
// not load is an error naming its flag.
func (f etcdAccessFlags) config(etcd, name string) (cluster.Config, error) {
	cfg := cluster.Config{Endpoints: splitEndpoints(etcd), Name: name}
	if len(cfg.Endpoints) == 0 {
		return cfg, errors.New("--cluster-etcd: no URL")
	}
	var err error
	if cfg.TLS, err = f.tlsConfig(); err != nil {
		return cfg, err
	}
	cfg.Username = *f.user
	cfg.Password, err = f.password()
	return cfg, err
}

// tlsConfig returns the TLS configuration of --etcd-ca, --etcd-cert and --etcd-key; nil
// when none is given.
func (f etcdAccessFlags) tlsConfig() (*tls.Config, error) {
	if *f.ca == "" && *f.cert == "" && *f.key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if *f.ca != "" {
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s: no PEM certificate in the file", *f.ca)
		}
	}
	if (*f.cert == "") != (*f.key == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together")
	}
	if *f.cert != "" {
		cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert, --etcd-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// password returns --etcd-user's password, from --etcd-password-file or the environment;
// "" without --etcd-user.
func (f etcdAccessFlags) password() (string, error) {
	env, inEnv := os.LookupEnv(etcdPasswordEnv)
	switch {
	case *f.user == "" && (*f.passwordFile != "" || inEnv):
		return "", fmt.Errorf("--etcd-password-file or $%s without --etcd-user", etcdPasswordEnv)
	case *f.user == "":
		return "", nil
	case *f.passwordFile != "" && inEnv:
		return "", fmt.Errorf("--etcd-password-file and $%s: give one", etcdPasswordEnv)
	case inEnv:
		if env == "" {
			return "", fmt.Errorf("$%s is empty", etcdPasswordEnv)
		}
		return env, nil
	case *f.passwordFile == "":
		return "", fmt.Errorf("--etcd-user %s needs a password: $%s or --etcd-password-file", *f.user, etcdPasswordEnv)
	}
	b, err := os.ReadFile(*f.passwordFile)
	if err != nil {
		return "", fmt.Errorf("--etcd-password-file: %v", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" || strings.ContainsAny(pw, "\r\n") {
		return "", fmt.Errorf("--etcd-password-file %s: want one non-empty line", *f.passwordFile)
	}
	return pw, nil
}

// splitEndpoints returns the URLs of --cluster-etcd's comma-separated list.
func splitEndpoints(list string) []string {
	var eps []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			eps = append(eps, u)
		}
	}
	return eps
}
