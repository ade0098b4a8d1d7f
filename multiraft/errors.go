package multiraft

import (
	"errors"
	"strconv"
)

var (
	// ErrClosed is returned by every method of a Host after Close.
	ErrClosed = errors.New("multiraft: host closed")
	// ErrUnknownGroup is returned for a GroupID the Host does not drive.
	ErrUnknownGroup = errors.New("multiraft: unknown group")
	// ErrGroupExists is returned by AddGroup for a GroupID the Host already drives.
	ErrGroupExists = errors.New("multiraft: group already exists")
	// ErrGroupFailed wraps the sticky Persist or Apply error of a group the Host stopped
	// driving.
	ErrGroupFailed = errors.New("multiraft: group failed")
	// ErrBadBatch is returned by Receive for a body that is not a batch this version
	// decodes; nothing of it is stepped.
	ErrBadBatch = errors.New("multiraft: malformed raft batch")
)

// NotLeaderError is ProposeLeader's refusal on a node that does not lead the group: nothing
// was taken. Leader is the leader this node knows, 0 if none.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "multiraft: not the leader, and no leader known"
	}
	return "multiraft: not the leader; the leader is " + strconv.FormatUint(e.Leader, 10)
}
