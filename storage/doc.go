// Package storage opens registry storage the way the registry does, names every
// path of the v2 layout in one grammar, and lists that layout in parallel.
//
// It only reads: nothing here deletes.
package storage
