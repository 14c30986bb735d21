package storage

// Progress receives counts from long phases (listing, reading, sweeping). Rendering
// is the caller's: a bar on a terminal, log lines elsewhere. Calls may come from
// several goroutines.
type Progress interface {
	// Phase starts a named phase expecting total items (0: unknown).
	Phase(name string, total int64)
	// Add counts n more items done in the current phase.
	Add(n int64)
}

// NoProgress discards progress.
type NoProgress struct{}

// Phase implements Progress.
func (NoProgress) Phase(string, int64) {}

// Add implements Progress.
func (NoProgress) Add(int64) {}
