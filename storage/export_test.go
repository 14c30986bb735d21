package storage

// SetEarlyHeld sets the entries early walks done walking may hold, until restore.
func SetEarlyHeld(n int64) (restore func()) {
	old := earlyHeld
	earlyHeld = n
	return func() { earlyHeld = old }
}

// EarlyWalks is how many repository walks start before the blob store is listed.
const EarlyWalks = earlyWalks
