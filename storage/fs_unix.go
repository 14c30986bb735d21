//go:build unix && !linux

package storage

// openat2NoSymlinks: openat2 is Linux's; elsewhere openBeneath goes one component
// at a time.
func openat2NoSymlinks(int, string, int) (int, error) { return -1, errNoOpenat2 }
