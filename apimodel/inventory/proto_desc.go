package inventory

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxEnumValues bounds the value names copied into one enum schema: a
// schema is a summary, and a huge generated enum would crowd out fields.
const maxEnumValues = 64

// inferGRPCWith builds the schema of the first gRPC message of a body from
// its descriptor when md is known, and from the wire format otherwise or
// when the bytes do not fit the descriptor (a stale or wrong descriptor
// set must not hide the traffic).
//
// The bytes are walked with protowire against the descriptor rather than
// unmarshalled into a dynamicpb message: that keeps the inference bounds
// (depth, properties, nodes) in force while reading, allocates only the
// schema, and never builds values the schema does not need.
func inferGRPCWith(body []byte, md protoreflect.MessageDescriptor, lim inferLimits) (inferResult, bool) {
	if md != nil {
		if msg, ok := firstMessage(body); ok {
			r := inferResult{}
			if s, ok := descMessage(msg, md, 1, lim, &r); ok {
				r.schema = s
				return r, true
			}
		}
	}
	return inferGRPC(body, lim)
}

// descMessage reads b as a message of type md. Fields are named by their
// .proto names and typed by their declared kinds; a field number the
// descriptor does not have (a newer peer) keeps its wire-format schema
// under its number. ok is false when the bytes are not a valid message or
// a field's wire type contradicts its declaration.
func descMessage(b []byte, md protoreflect.MessageDescriptor, depth int, lim inferLimits, r *inferResult) (*Schema, bool) {
	s := &Schema{Type: "object"}
	r.nodes++
	fields := md.Fields()
	// Merging moves nodes, never creates them (as in JSON arrays), so
	// r.nodes alone bounds the sample.
	bud := schemaBudget{maxProps: lim.maxProps, left: math.MaxInt}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, false
		}
		val := b[:n]
		b = b[n:]
		fd := fields.ByNumber(num)
		var key string
		if fd != nil {
			key = string(fd.Name())
		} else {
			key = strconv.FormatUint(uint64(num), 10)
		}
		old, seen := s.Properties[key]
		if !seen && (len(s.Properties) >= lim.maxProps || r.nodes >= lim.maxNodes) {
			r.dropped++
			if fd != nil && !wireFits(fd, typ) {
				return nil, false
			}
			continue
		}
		var f *Schema
		if fd == nil {
			f = unknownField(typ, val, depth, lim, r)
			if f == nil {
				return nil, false
			}
		} else {
			var ok bool
			if f, ok = descField(fd, typ, val, depth, lim, r); !ok {
				return nil, false
			}
		}
		if !seen {
			r.nodes++
			r.sensitive |= sensitiveInKey(key)
			if s.Properties == nil {
				s.Properties = map[string]*Schema{}
			}
			s.Properties[key] = f
			continue
		}
		s.Properties[key] = mergeSchema(old, f, &bud)
	}
	r.dropped += bud.dropped
	for k := range s.Properties {
		s.Required = append(s.Required, k)
	}
	sort.Strings(s.Required)
	return s, true
}

// descField types one occurrence of a declared field. Repeated fields are
// arrays (one occurrence is one element, or a packed run of them); maps are
// objects without properties, since their keys are data, not field names.
func descField(fd protoreflect.FieldDescriptor, typ protowire.Type, val []byte, depth int, lim inferLimits, r *inferResult) (*Schema, bool) {
	if fd.IsMap() {
		if typ != protowire.BytesType {
			return nil, false
		}
		if _, n := protowire.ConsumeBytes(val); n < 0 {
			return nil, false
		}
		return &Schema{Type: "object"}, true
	}
	var elem *Schema
	var ok bool
	if fd.IsList() && typ == protowire.BytesType && packable(fd.Kind()) {
		elem, ok = packedScalars(fd, val, r)
	} else {
		elem, ok = singleValue(fd, typ, val, depth, lim, r)
	}
	if !ok {
		return nil, false
	}
	if fd.IsList() {
		r.nodes++
		return &Schema{Type: "array", Items: elem}, true
	}
	return elem, true
}

// singleValue types one non-packed value of fd.
func singleValue(fd protoreflect.FieldDescriptor, typ protowire.Type, val []byte, depth int, lim inferLimits, r *inferResult) (*Schema, bool) {
	if !wireFits(fd, typ) {
		return nil, false
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		var inner []byte
		if typ == protowire.StartGroupType {
			v, n := protowire.ConsumeGroup(fd.Number(), val)
			if n < 0 {
				return nil, false
			}
			inner = v
		} else {
			v, n := protowire.ConsumeBytes(val)
			if n < 0 {
				return nil, false
			}
			inner = v
		}
		if depth >= lim.maxDepth || r.nodes >= lim.maxNodes {
			if len(inner) > 0 {
				r.dropped++
			}
			return &Schema{Type: "object"}, true
		}
		return descMessage(inner, fd.Message(), depth+1, lim, r)
	case protoreflect.StringKind:
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return nil, false
		}
		if !utf8.Valid(v) {
			// proto3 strings are UTF-8; proto2 ones need not be.
			return &Schema{Type: "string", Format: "byte"}, true
		}
		r.sensitive |= sensitiveInValue(string(v))
		return &Schema{Type: "string", Format: stringFormat(string(v))}, true
	case protoreflect.BytesKind:
		if _, n := protowire.ConsumeBytes(val); n < 0 {
			return nil, false
		}
		return &Schema{Type: "string", Format: "byte"}, true
	}
	return scalarSchema(fd), true // framing already checked by ConsumeFieldValue
}

// packedScalars checks a packed run of fd's kind and returns the element
// schema.
func packedScalars(fd protoreflect.FieldDescriptor, val []byte, r *inferResult) (*Schema, bool) {
	v, n := protowire.ConsumeBytes(val)
	if n < 0 {
		return nil, false
	}
	want := wireType(fd.Kind())
	for len(v) > 0 {
		var m int
		switch want {
		case protowire.VarintType:
			_, m = protowire.ConsumeVarint(v)
		case protowire.Fixed32Type:
			_, m = protowire.ConsumeFixed32(v)
		default:
			_, m = protowire.ConsumeFixed64(v)
		}
		if m < 0 {
			return nil, false
		}
		v = v[m:]
	}
	return scalarSchema(fd), true
}

// scalarSchema maps a numeric, bool or enum kind to its JSON-schema type;
// the format names the proto type so int64 and uint32 stay apart.
func scalarSchema(fd protoreflect.FieldDescriptor) *Schema {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return &Schema{Type: "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return &Schema{Type: "integer", Format: "int32"}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return &Schema{Type: "integer", Format: "int64"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return &Schema{Type: "integer", Format: "uint32"}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return &Schema{Type: "integer", Format: "uint64"}
	case protoreflect.FloatKind:
		return &Schema{Type: "number", Format: "float"}
	case protoreflect.DoubleKind:
		return &Schema{Type: "number", Format: "double"}
	case protoreflect.EnumKind:
		// The JSON mapping of an enum is its value name.
		s := &Schema{Type: "string"}
		if vals := fd.Enum().Values(); vals.Len() <= maxEnumValues {
			s.Enum = make([]string, 0, vals.Len())
			for i := 0; i < vals.Len(); i++ {
				s.Enum = append(s.Enum, string(vals.Get(i).Name()))
			}
		}
		return s
	}
	return &Schema{}
}

// wireFits reports whether wire type typ may carry fd: its own wire type,
// or a packed run for a repeated scalar.
func wireFits(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	if fd.IsMap() {
		return typ == protowire.BytesType
	}
	if typ == protowire.BytesType && fd.IsList() && packable(fd.Kind()) {
		return true
	}
	want := wireType(fd.Kind())
	if fd.Kind() == protoreflect.MessageKind && typ == protowire.StartGroupType {
		// Editions' delimited encoding reports the kind as group; accept
		// both spellings of a nested message.
		return true
	}
	return typ == want
}

func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType // string, bytes, message
}

func packable(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind:
		return false
	}
	return true
}

// unknownField types a field the descriptor lacks by its wire type, as the
// descriptor-less path does; nil when it cannot be read.
func unknownField(typ protowire.Type, val []byte, depth int, lim inferLimits, r *inferResult) *Schema {
	switch typ {
	case protowire.VarintType, protowire.Fixed64Type, protowire.Fixed32Type:
		return scalarWireSchema(typ)
	case protowire.BytesType:
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return nil
		}
		return lengthDelimited(v, depth, lim, r)
	case protowire.StartGroupType:
		return &Schema{Type: "object"}
	}
	return nil
}
