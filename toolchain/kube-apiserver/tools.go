//go:build tools

// Package tools pins the kube-apiserver main package so `go mod tidy` keeps its deps.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
