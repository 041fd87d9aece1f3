package inventory

import (
	"encoding/binary"
	"sort"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// inferGRPC builds the schema of the first gRPC message in a body (5-byte
// length prefix, uncompressed, complete) from the protobuf wire format
// alone: without the .proto the fields are named by their numbers and
// typed by wire type — varint integers, fixed32/fixed64 numbers,
// length-delimited as a printable string, a nested message, or bytes; a
// field seen more than once is an array. ok is false when there is no
// complete message to read.
func inferGRPC(body []byte, lim inferLimits) (inferResult, bool) {
	msg, ok := firstMessage(body)
	if !ok {
		return inferResult{}, false
	}
	r := inferResult{}
	s, ok := wireMessage(msg, 1, lim, &r)
	if !ok {
		return inferResult{}, false
	}
	r.schema = s
	return r, true
}

// firstMessage returns the first length-prefixed gRPC message of a body;
// ok is false when it is compressed or incomplete.
func firstMessage(body []byte) ([]byte, bool) {
	if len(body) < 5 || body[0] != 0 {
		return nil, false // compressed or not a message start
	}
	n := uint64(binary.BigEndian.Uint32(body[1:5]))
	if n > uint64(len(body)-5) {
		return nil, false
	}
	return body[5 : 5+n], true
}

// wireMessage parses b as a protobuf message; ok is false when b is not
// one (bad tags, lengths past the end, group wire types).
func wireMessage(b []byte, depth int, lim inferLimits, r *inferResult) (*Schema, bool) {
	s := &Schema{Type: "object", Properties: map[string]*Schema{}}
	r.nodes++
	seen := map[string]int{}
	for len(b) > 0 {
		tag, m := binary.Uvarint(b)
		if m <= 0 || tag>>3 == 0 || tag>>3 > 1<<29-1 {
			return nil, false
		}
		b = b[m:]
		var f *Schema
		switch tag & 7 {
		case 0:
			_, m := binary.Uvarint(b)
			if m <= 0 {
				return nil, false
			}
			b = b[m:]
			f = scalarWireSchema(protowire.VarintType)
		case 1:
			if len(b) < 8 {
				return nil, false
			}
			b = b[8:]
			f = scalarWireSchema(protowire.Fixed64Type)
		case 5:
			if len(b) < 4 {
				return nil, false
			}
			b = b[4:]
			f = scalarWireSchema(protowire.Fixed32Type)
		case 2:
			l, m := binary.Uvarint(b)
			if m <= 0 || l > uint64(len(b)-m) {
				return nil, false
			}
			v := b[m : m+int(l)]
			b = b[m+int(l):]
			f = lengthDelimited(v, depth, lim, r)
		default:
			return nil, false // groups (3, 4) and invalid wire types
		}
		key := strconv.FormatUint(tag>>3, 10)
		seen[key]++
		switch old := s.Properties[key]; {
		case old == nil:
			if len(s.Properties) >= lim.maxProps || r.nodes >= lim.maxNodes {
				r.dropped++
				continue
			}
			r.nodes++
			s.Properties[key] = f
		case old.Type == "array":
			if old.Items.Type != f.Type {
				old.Items = &Schema{Type: "string", Format: "byte"}
			}
		default:
			if old.Type != f.Type {
				f = &Schema{Type: "string", Format: "byte"}
			}
			s.Properties[key] = &Schema{Type: "array", Items: f}
		}
	}
	for k := range s.Properties {
		s.Required = append(s.Required, k)
	}
	sort.Strings(s.Required)
	return s, true
}

// scalarWireSchema types a varint, fixed64 or fixed32 field by its wire
// type alone (nil for other types).
func scalarWireSchema(t protowire.Type) *Schema {
	switch t {
	case protowire.VarintType:
		return &Schema{Type: "integer", Format: "varint"}
	case protowire.Fixed64Type:
		return &Schema{Type: "number", Format: "fixed64"}
	case protowire.Fixed32Type:
		return &Schema{Type: "number", Format: "fixed32"}
	}
	return nil
}

// lengthDelimited types a length-delimited field: printable UTF-8 is a
// string, a valid message a nested object, anything else bytes.
func lengthDelimited(v []byte, depth int, lim inferLimits, r *inferResult) *Schema {
	if printable(v) {
		return &Schema{Type: "string"}
	}
	if depth < lim.maxDepth && len(v) > 0 {
		sub := inferResult{nodes: r.nodes}
		if s, ok := wireMessage(v, depth+1, lim, &sub); ok {
			r.nodes, r.dropped = sub.nodes, r.dropped+sub.dropped
			return s
		}
	}
	return &Schema{Type: "string", Format: "byte"}
}

func printable(v []byte) bool {
	if !utf8.Valid(v) {
		return false
	}
	for _, c := range string(v) {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
