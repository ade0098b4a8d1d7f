//go:build linux

package lazyfs

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns a failed mount in MountT into a test
// failure instead of a skip; CI sets it.
const RequireEnv = "SLUICE_REQUIRE_FUSE"

// MountT creates a Disk in root and mounts it at mnt for the test t, which unmounts it when
// it ends. Where mounting fails (no /dev/fuse, not root), t fails if RequireEnv is set and
// is skipped otherwise, with the reason.
func MountT(t testing.TB, root, mnt string) *Disk {
	t.Helper()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Mount(mnt); err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s is set and the FUSE mount failed: %v", RequireEnv, err)
		}
		t.Skipf("cannot mount a FUSE file system here (needs /dev/fuse and root): %v (set %s to make this a failure)", err, RequireEnv)
	}
	t.Cleanup(func() {
		if err := d.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return d
}
