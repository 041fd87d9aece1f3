package inventory

// Schema fingerprints, for the stability of sampled schemas (see
// Config.SchemaStableSamples): a sample is "unchanged" when the
// fingerprint of what it merged into is the same before and after.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mixString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	h ^= 0xff // terminator: "ab"+"c" and "a"+"bc" differ
	return h * fnvPrime
}

func mixUint(h, v uint64) uint64 {
	h ^= v
	h *= fnvPrime
	h ^= h >> 29
	return h
}

// schemaPrint fingerprints a schema. Properties are combined
// order-independently (a map has no order), so no keys are sorted and
// nothing is allocated.
func schemaPrint(s *Schema) uint64 {
	if s == nil {
		return 1
	}
	h := uint64(fnvOffset)
	h = mixString(h, s.Type)
	h = mixString(h, s.Format)
	if s.Nullable {
		h = mixUint(h, 2)
	}
	var props uint64
	for k, p := range s.Properties {
		props += mixUint(mixString(fnvOffset, k), schemaPrint(p))
	}
	h = mixUint(h, props)
	h = mixUint(h, uint64(len(s.Properties)))
	for _, r := range s.Required {
		h = mixString(h, r)
	}
	h = mixUint(h, uint64(len(s.Required)))
	h = mixUint(h, schemaPrint(s.Items))
	for _, e := range s.Enum {
		h = mixString(h, e)
	}
	return mixUint(h, uint64(len(s.Enum)))
}

// samplePrint fingerprints what a sample of ep merges into: the request
// schema, the response schema of code, and the sensitive kinds.
func (ep *endpoint) samplePrint(req, resp bool, code int) uint64 {
	h := mixUint(fnvOffset, uint64(ep.Sensitive))
	if req {
		h = mixUint(h, schemaPrint(ep.ReqSchema))
	}
	if resp {
		rs, ok := ep.RespSchemas[code]
		if !ok {
			rs = nil
		}
		h = mixUint(h, schemaPrint(rs))
		if ok {
			h = mixUint(h, 3)
		}
	}
	return h
}
