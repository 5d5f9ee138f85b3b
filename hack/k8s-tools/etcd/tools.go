//go:build tools

// Package tools pins the etcd server that backs the e2e test cluster.
package tools

import _ "go.etcd.io/etcd/server/v3"
