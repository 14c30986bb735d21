package storage

import "net/http"

// KeepConnections makes the process's default HTTP transport keep up to
// ObjectStoreMax idle connections a host, where Go keeps 2. distribution's object
// store drivers send through it (s3aws through http.DefaultClient); with hundreds
// of requests in flight to one endpoint, a pool of 2 closes nearly every
// connection a request leaves, and the next request dials (on TLS, handshakes)
// again: a 200-manifest run on the fake S3 dialed 320 connections for 344
// requests. It also gives http.DefaultClient a tuned transport of its own: the
// AWS SDK, given a CA bundle (AWS_CA_BUNDLE), adopts the client's transport, and
// when there is none puts in one of its own with Go's pool of 2.
//
// It changes globals: call it before any request is made (a main's init).
func KeepConnections() {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return
	}
	if t.MaxIdleConns != 0 { // 0: no limit
		t.MaxIdleConns = max(t.MaxIdleConns, ObjectStoreMax)
	}
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, ObjectStoreMax)
	if http.DefaultClient.Transport == nil {
		http.DefaultClient.Transport = t.Clone()
	}
}
