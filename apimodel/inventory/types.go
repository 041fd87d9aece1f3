package inventory

import "time"

// This file holds the read-only snapshot types the inventory hands to the
// API, the OpenAPI exporter and the store. They are plain values: a snapshot
// never aliases the live inventory's maps.

// Service is the listening process's executable plus port.
type Service struct {
	Name string // basename of Exe, or "unknown"
	Exe  string
	Port uint16
}

// Process is one process seen serving an endpoint.
type Process struct {
	PID         uint32
	Comm        string
	Exe         string
	ContainerID string
}

// Param describes one query or path parameter.
type Param struct {
	Name   string
	In     string // "query" or "path"
	Type   string // JSON-schema type: string, integer, number, boolean
	Format string // uuid, email, date, date-time, hex, ...
	Count  uint64 // requests that carried it
	// Required is true when every request to the endpoint carried it.
	Required bool
}

// Schema is an inferred JSON schema (a subset of JSON Schema / OpenAPI).
type Schema struct {
	Type       string             `json:"type,omitempty"` // object, array, string, integer, number, boolean, null
	Format     string             `json:"format,omitempty"`
	Properties map[string]*Schema `json:"properties,omitempty"`
	Required   []string           `json:"required,omitempty"` // keys present in every sample
	Items      *Schema            `json:"items,omitempty"`
	Nullable   bool               `json:"nullable,omitempty"`
	// Enum lists the allowed values when a descriptor declares them (a
	// protobuf enum, by value name); samples alone never set it.
	Enum []string `json:"enum,omitempty"`
}

// Endpoint is one service + method + path template.
type Endpoint struct {
	Service      Service
	Method       string
	PathTemplate string
	RequestCount uint64
	StatusCodes  map[int]uint64
	// NoResponse counts requests whose connection ended before a response.
	NoResponse  uint64
	Processes   []Process
	QueryParams []Param
	PathParams  []Param
	// Content types (media type only, no parameters) with counts.
	RequestContentTypes  map[string]uint64
	ResponseContentTypes map[string]uint64
	RequestSchema        *Schema
	ResponseSchemas      map[int]*Schema // by status code
	// AuthSchemes counts the authentication seen: "bearer-jwt", "bearer",
	// "basic", "api-key:<header>", "cookie:<name>", "none".
	AuthSchemes map[string]uint64
	// Sensitive lists the kinds of sensitive data seen in requests or
	// responses (email, credit-card, jwt, password, ...).
	Sensitive []string
	// TLS counts the TLS library per call ("" key = plaintext).
	TLS map[string]uint64
	// Protocol is the endpoint's protocol: "http/1.1", "h2" or "grpc" (the
	// one most of its calls used); Protocols counts calls per protocol.
	Protocol  string
	Protocols map[string]uint64
	// GRPCStatusCodes counts grpc-status values of gRPC calls (-1: the
	// call ended without one); GRPCKinds counts the streaming kinds seen
	// (unary, client-streaming, server-streaming, bidi-streaming).
	GRPCStatusCodes map[int]uint64
	GRPCKinds       map[string]uint64
	// PartialCalls counts HTTP/2 calls some header fields of which could
	// not be decoded (agent joined the connection late).
	PartialCalls uint64
	// Baseline is the behavioural model's baseline of the endpoint, filled
	// in by the agent (the inventory itself leaves it nil).
	Baseline  map[string]float64
	FirstSeen time.Time
	LastSeen  time.Time
}
