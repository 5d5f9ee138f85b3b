//go:build tools

// Package tools pins the helm CLI used to test the chart.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
