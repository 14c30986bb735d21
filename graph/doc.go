// Package graph owns the on-disk index of a registry's reference graph: blobs,
// repositories, links, tags and the edges parsed out of every manifest. It reads
// storage only through a driver's read calls and never deletes.
package graph
