package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/internal/keyring"
)

// kmsFlags name the keyring create-key and rotate-key change: a directory (a single node's
// --kms-keyring), or a cluster's keyring in etcd.
type kmsFlags struct {
	dir, etcd, name *string
	access          etcdAccessFlags
}

func addKMSFlags(fs *flag.FlagSet) kmsFlags {
	return kmsFlags{
		dir:    fs.String("kms-keyring", "", "keyring `directory` (created 0700) of a single node; a server's default is DATA-DIR/kms-keyring"),
		etcd:   fs.String("cluster-etcd", "", "`URL[,URL…]` of a cluster's etcd: change the cluster's keyring, which every node shares (instead of --kms-keyring)"),
		name:   fs.String("cluster-name", cluster.DefaultName, "the cluster's `name`, with --cluster-etcd"),
		access: addEtcdAccessFlags(fs),
	}
}

// set reports whether exactly one of --kms-keyring and --cluster-etcd is given.
func (f kmsFlags) set() bool { return (*f.dir == "") != (*f.etcd == "") }

// open returns the keyring the flags name and what closes it. A directory that caches a
// cluster's keyring is refused: its keys are made in etcd, and a version made in the
// cache alone would be one no other node has.
func (f kmsFlags) open() (*keyring.Ring, func(), error) {
	if *f.etcd == "" {
		if f.access.given() {
			return nil, nil, errors.New("the --etcd-* flags need --cluster-etcd")
		}
		d := keyring.NewDir(*f.dir)
		of, cached, err := d.CacheOf()
		if err != nil {
			return nil, nil, err
		}
		if cached {
			return nil, nil, fmt.Errorf("%s is a node's cache of %s: change that keyring with --cluster-etcd", *f.dir, of)
		}
		return keyring.New(d), func() {}, nil
	}
	cfg, err := f.access.config(*f.etcd, *f.name)
	if err != nil {
		return nil, nil, err
	}
	c, err := cluster.Dial(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, err := c.KeyringStore("")
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return keyring.New(store), func() { c.Close() }, nil
}
