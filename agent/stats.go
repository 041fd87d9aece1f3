package agent

import (
	"reflect"
	"strings"
	"unicode"
)

// flattenStats turns a stats struct (possibly nested) into snake_case
// counter names, so every component can keep a plain struct of integers and
// the agent exports all of them without a hand-written list per component.
func flattenStats(prefix string, v any, out map[string]uint64) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return
	}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() {
			continue
		}
		name := snake(f.Name)
		if prefix != "" {
			name = prefix + "_" + name
		}
		fv := rv.Field(i)
		switch fv.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			out[name] = fv.Uint()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if n := fv.Int(); n >= 0 {
				out[name] = uint64(n)
			}
		case reflect.Struct:
			flattenStats(name, fv.Interface(), out)
		}
	}
}

// snake converts CamelCase (with acronyms: TLSChunks -> tls_chunks).
func snake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
