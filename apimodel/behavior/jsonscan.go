package behavior

import (
	"encoding/json"
	"unicode/utf8"
)

// JSON member scanning for requestFields without decoding into maps:
// decoding each body into map[string]json.RawMessage was half of the
// model's time per call. Input is checked with json.Valid first, so the
// scanner can be lenient about what it skips.

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string that
// opens at b[i], and whether it holds an escape.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i + 1, esc
		}
	}
	return len(b), esc
}

// valueEnd returns the index after the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		e, _ := stringEnd(b, i)
		return e
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// members calls fn with each member of the valid JSON object b, in
// document order, until fn returns false. key is the raw key bytes
// (unescaped only when escaped is set, into a new string).
func members(b []byte, fn func(key string, val []byte) bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return
		}
		ke, esc := stringEnd(b, i)
		var key string
		if esc || !utf8.Valid(b[i+1:ke-1]) {
			// Unescaped, and invalid UTF-8 replaced, as encoding/json does.
			if json.Unmarshal(b[i:ke], &key) != nil {
				return
			}
		} else {
			key = string(b[i+1 : ke-1])
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipWS(b, i+1)
		ve := valueEnd(b, i)
		if !fn(key, b[i:ve]) {
			return
		}
		i = skipWS(b, ve)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// jsonString returns the JSON string value v unquoted.
func jsonString(v []byte) string {
	if len(v) < 2 {
		return ""
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' {
			var s string
			_ = json.Unmarshal(v, &s)
			return s
		}
	}
	return string(v[1 : len(v)-1])
}
