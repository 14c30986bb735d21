package main

import (
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
)

// plural counts a noun: "1 blob", "2 blobs", "1 tag history entry", "3 repositories".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return humanize.Comma(int64(n)) + " " + pluralOf(noun)
}

func pluralOf(noun string) string {
	switch {
	case strings.HasSuffix(noun, "ry") || strings.HasSuffix(noun, "ty"):
		return noun[:len(noun)-1] + "ies"
	case strings.HasSuffix(noun, "ex"):
		return noun + "es"
	case strings.HasSuffix(noun, "s"):
		return noun
	}
	return noun + "s"
}

// nBlobs is "1 blob", "1,234 blobs".
func nBlobs(n int) string { return plural(n, "blob") }

// byteSize is a flag of bytes that takes units: 268435456, 256MiB, 1.5GB.
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("want bytes, with a unit or without (268435456, 256MiB, 1GB): %v", err)
	}
	*b = byteSize(v)
	return nil
}

func (b *byteSize) Type() string { return "bytes" }
