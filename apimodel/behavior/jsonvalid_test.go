package behavior

import (
	"encoding/json"
	"strings"
	"testing"
)

var validJSONCases = []string{
	``, ` `, `{}`, ` {} `, `{`, `}`, `[]`, `[`, `[1,]`, `[,1]`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a" 1}`, `{a:1}`,
	`{"a":1}x`, `{"a":1}{}`, `"x"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"\x01\"", "\"\x7f\xff\xfe\"",
	`"unterminated`, `"trailing\`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1E-7`, `1e5`, `-12.5e+3`,
	`+1`, `1.5.5`, `true`, `tru`, `truex`, `false`, `null`, `nul`, `[true,false,null]`, " \t\r\n[1]\n", "[1]\v",
	`{"id":1,"name":"a","tags":["x",{"y":[1,2,{"z":null}]}],"n":-0.5e10}`, `{"a":{"b":{"c":{}}}}`, `[[[]]]`,
	`{"a":[1,2,3],"b":{"c":"d"}}`, `{"":""}`, `{"a":1,"a":2}`, "{\"a\":\"\t\"}", `[1 2]`, `[-]`, `[01]`, `{"a":}`,
	`{"a":1]`, `[1}`, `{,}`, `{"a":1,,"b":2}`, `"\uD800"`, "\xef\xbb\xbf{}",
}

func TestValidJSON(t *testing.T) {
	cases := append([]string(nil), validJSONCases...)
	cases = append(cases, strings.Repeat("[", maxJSONDepth)+strings.Repeat("]", maxJSONDepth),
		strings.Repeat("[", maxJSONDepth+1)+strings.Repeat("]", maxJSONDepth+1),
		strings.Repeat(`{"a":`, maxJSONDepth)+"1"+strings.Repeat("}", maxJSONDepth),
		strings.Repeat(`{"a":`, maxJSONDepth+1)+"1"+strings.Repeat("}", maxJSONDepth+1),
		strings.Repeat(`[{"a":`, maxJSONDepth/2)+"1"+strings.Repeat("}]", maxJSONDepth/2))
	for _, c := range cases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}
