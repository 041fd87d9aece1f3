// Package e2e holds apiwarden's end-to-end tests: real servers (Go, Python,
// nginx) in one network namespace, real clients (curl, a Go client) in
// another, the agent in the root namespace watching the host-side veths, and
// a scripted workload whose expected inventory is derived from the script.
// The tests need root and skip otherwise. The reusable pieces live in
// e2e/harness, which bench/http also uses.
package e2e
