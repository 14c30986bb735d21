package gc

// SpillAll makes every plan with a spill directory spill its blob items, sorted
// in runs of run items, until the returned function restores the defaults.
func SpillAll(run int) (restore func()) {
	above, sr, re := spillAbove, sortRun, releaseEvery
	spillAbove = func() int64 { return 0 }
	sortRun, releaseEvery = run, 3 // chunk edges everywhere
	return func() { spillAbove, sortRun, releaseEvery = above, sr, re }
}

// Spilled reports whether p holds its blob items in a spill file.
func Spilled(p *Plan) bool { return p.blobSpill != nil }
