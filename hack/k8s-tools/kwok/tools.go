//go:build tools

// Package tools pins kwok, which fakes nodes and pods for the e2e cluster.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
