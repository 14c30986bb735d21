package storage

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var noOpenat2 atomic.Bool // the kernel (or a seccomp filter) refused openat2 once

// openat2NoSymlinks opens name below dirfd in one call that the kernel fails with
// ELOOP at any symbolic link, or returns errNoOpenat2.
func openat2NoSymlinks(dirfd int, name string, flags int) (int, error) {
	if noOpenat2.Load() {
		return -1, errNoOpenat2
	}
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err == unix.ENOSYS {
		noOpenat2.Store(true)
		return -1, errNoOpenat2
	}
	return fd, err
}
