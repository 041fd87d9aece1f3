// Package apiwardenv1 holds the protobuf, gRPC and grpc-gateway code
// generated from apiwarden.proto and apiwarden_http.yaml. Only this file
// is written by hand.
package apiwardenv1

//go:generate ../../../scripts/gen-proto.sh
