package gc

// SpillAll makes every plan with a spill directory spill its blob items, sorted
// in runs of run items, until the returned function restores the defaults.
func SpillAll(run int) (restore func()) {
	above, sr := spillAbove, sortRun
	spillAbove = func() int64 { return 0 }
	sortRun = run
	return func() { spillAbove, sortRun = above, sr }
}

// Spilled reports whether p holds its blob items in a spill file.
func Spilled(p *Plan) bool { return p.blobSpill != nil }
