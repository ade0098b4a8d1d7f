package multiraft

import "errors"

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
