package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/replica"
)

// childNode is one `sluice serve` child process of the cluster suite (a cluster node or the
// single node beside it), or its absence between a kill and a restart. Its standard error
// goes to a log file beside its data directory, quoted when it fails to start.
type childNode struct {
	bin     string
	args    []string // serve's arguments, the same at every start
	dir     string   // the process's working directory, where a --profile is written
	dataDir string
	logPath string
	endpoint

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// newChildNode makes a node that serves on a free loopback port with its data in dir;
// extra are serve's other arguments.
func newChildNode(bin, dir string, extra ...string) (*childNode, error) {
	dir, err := filepath.Abs(dir) // the process runs in dir: its paths must not be relative
	if err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	args := append([]string{"serve", "--addr", addr, "--data-dir", data}, extra...)
	return &childNode{bin: bin, args: args, dir: dir, dataDir: data, logPath: filepath.Join(dir, "node.log"), endpoint: newEndpoint(addr)}, nil
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

// start starts the process and waits until it says it serves.
func (n *childNode) start() error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(n.bin, n.args...)
	cmd.Dir, cmd.Stderr = n.dir, logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		lines := bufio.NewScanner(out)
		said := false
		for lines.Scan() {
			if !said && strings.HasPrefix(lines.Text(), "sluice: serving") {
				said = true
				close(ready)
			}
		}
		cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	select {
	case <-ready:
		return nil
	case <-exited:
		n.cmd, n.exited = nil, nil
		return fmt.Errorf("%s exited before it served (%v): %s", n.addr, cmd.ProcessState, n.logTail())
	case <-time.After(childStartLimit):
		n.kill()
		return fmt.Errorf("%s did not serve within %v: %s", n.addr, childStartLimit, n.logTail())
	}
}

// logTail is the end of the node's log, for an error.
func (n *childNode) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	const most = 2 << 10
	if len(b) > most {
		b = b[len(b)-most:]
	}
	return strings.TrimSpace(string(b))
}

// pid is the running process's id; 0 when none runs.
func (n *childNode) pid() int {
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// kill kills the process with SIGKILL and waits for it to exit.
func (n *childNode) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd, n.exited = nil, nil
}

// stop stops the process with SIGTERM, or SIGKILL if it has not exited after 10 s.
func (n *childNode) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		n.cmd, n.exited = nil, nil
	case <-time.After(10 * time.Second):
		n.kill()
	}
}

// raftID is the Raft id in the node's node.json; 0 when there is none.
func (n *childNode) raftID() uint64 {
	b, err := os.ReadFile(filepath.Join(n.dataDir, "node.json"))
	if err != nil {
		return 0
	}
	var v struct {
		RaftID uint64 `json:"raft_id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return 0
	}
	return v.RaftID
}

// sideState reads the Raft state of the node's replica of a shard of a stream (its
// raft.state); ok is false when the node holds no such replica yet.
func (n *childNode) sideState(streamName string, shard int) (replica.SideState, bool) {
	dirs, _ := filepath.Glob(filepath.Join(n.dataDir, "streams", streamName+"@*", "shard-"+strconv.Itoa(shard)))
	if len(dirs) != 1 {
		return replica.SideState{}, false
	}
	st, err := replica.ReadSide(dirs[0])
	return st, err == nil
}

// cpuTimes is the CPU time the running processes of nodes have used, summed.
func cpuTimes(nodes []*childNode) (time.Duration, error) {
	var sum time.Duration
	for _, n := range nodes {
		if n.pid() == 0 {
			continue
		}
		t, err := cpuTime(n.pid())
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// leaderOf returns the index in nodes of the running node that leads the shard, as the
// nodes' files say: the one that voted for itself (raft.state's vote is its own Raft id)
// in the highest term any replica of the shard has seen, which with PreVote is almost
// always the term's leader (the cluster fault tests find leaders the same way). -1 when no
// running node qualifies.
func leaderOf(nodes []*childNode, streamName string, shard int) int {
	var top uint64
	states := make([]replica.SideState, len(nodes))
	for i, n := range nodes {
		if st, ok := n.sideState(streamName, shard); ok {
			states[i] = st
			top = max(top, st.Term)
		}
	}
	for i, n := range nodes {
		if st := states[i]; n.pid() != 0 && top > 0 && st.Term == top && st.Vote != 0 && st.Vote == n.raftID() {
			return i
		}
	}
	return -1
}

// waitFor calls f every so often until it returns nil, and returns its last error if that
// has not happened within limit.
func waitFor(ctx context.Context, limit time.Duration, what string, every time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, limit, err)
		}
		time.Sleep(every)
	}
}

var errNoLeader = errors.New("no leader yet")
