package behavior

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

func TestRequestFieldsScanner(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"b":"x","c":{"d":true,"e":[1,{"f":2}]},"g":null,"h":1.5}`: "[json:a:integer json:b:string json:c:object json:c.d:boolean json:c.e:array json:g:null json:h:number]",
		` { "k\"ey" : "v}\"{" , "n" : { } } `:                             "[json:k\"ey:string json:n:object]",
		`{"u\u0041":[["}"]],"z":-2e3}`:                                    "[json:uA:array json:z:number]",
		`{"a":1,}`:                                                        "[]", // invalid: nothing
		`{"a":1`:                                                          "[]",
		`[1,2]`:                                                           "[]",
		`{}`:                                                              "[]",
		`{"a":"b"}`:                                                       "[json:a:string]",
	} {
		fs, _ := requestFields(&call.Request{Body: []byte(body)})
		var got []string
		for _, f := range fs {
			got = append(got, f.name+":"+typeNames(f.typ))
		}
		if fmt.Sprint(got) != want && !(len(got) == 0 && want == "[]") {
			t.Errorf("%s: got %v, want %s", body, got, want)
		}
	}
	_, acct := requestFields(&call.Request{Body: []byte(`{"password":"x","username":"al\u0069ce"}`)})
	if acct != "alice" {
		t.Errorf("account %q", acct)
	}
}

// FuzzMembers: on every valid JSON object the scanner finds the keys
// encoding/json decodes, with the same value types.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,"]"]},"c":"\\"}`, `{"\u00e9":true,"x":null}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil || !json.Valid(b) {
			return
		}
		got := map[string]uint8{}
		members(b, func(k string, v []byte) bool {
			got[k] = jsonType(v)
			return true
		})
		for k, v := range obj {
			if gt, ok := got[k]; !ok || gt != jsonType(v) {
				t.Fatalf("%q: key %q type %v, scanner %v (found %v); all %v", b, k, jsonType(v), gt, ok, slices.Collect(func(yield func(string) bool) {
					for k := range got {
						if !yield(k) {
							return
						}
					}
				}))
			}
		}
		if len(got) != len(obj) {
			t.Fatalf("%q: scanner keys %v, decoder %d", b, got, len(obj))
		}
	})
}
