// Package gc decides what is garbage in an indexed registry. Mark computes what is
// live over the index alone (no storage calls), NewPlan turns that into a Plan value
// naming every path to delete and why, and reports are computed from the plan.
// Nothing in this package prints, exits or reads flags.
package gc
