package detectbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// PublicLists maps payload files shipped by Debian packages (read at test
// time, never committed: they are other projects' GPL data) to a family.
var PublicLists = map[string]string{
	"/usr/share/wfuzz/wordlist/Injections/SQL.txt":       "sqli",
	"/usr/share/wfuzz/wordlist/Injections/XSS.txt":       "xss",
	"/usr/share/wfuzz/wordlist/Injections/Traversal.txt": "traversal",
	"/usr/share/wfuzz/wordlist/Injections/XML.txt":       "xml-xpath", // XPath/XML-tag injection, not XXE
}

// PublicEntry is one request built from one payload line.
type PublicEntry struct {
	Entry
	HeldBack bool
}

// LoadPublicLists reads every listed file that exists; each non-empty,
// non-comment line is one payload, sent as a GET query value and as a JSON
// string field of a POST. The id (file base name + line) picks the slice.
func LoadPublicLists() ([]PublicEntry, []string, error) {
	var out []PublicEntry
	var used []string
	for path, fam := range PublicLists {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		used = append(used, path)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for n := 1; sc.Scan(); n++ {
			p := strings.TrimRight(sc.Text(), "\r")
			if strings.TrimSpace(p) == "" || strings.HasPrefix(p, "#") {
				continue
			}
			id := fmt.Sprintf("%s:%d", filepath.Base(path), n)
			held := HeldBack(id)
			body, _ := json.Marshal(map[string]string{"q": p})
			out = append(out,
				PublicEntry{Entry{ID: id + ":query", Class: fam, Where: "query", Method: "GET", Path: "/api/items",
					Query: "q=" + url.QueryEscape(p), Headers: [][2]string{{"Host", "api.example"}}}, held},
				PublicEntry{Entry{ID: id + ":json", Class: fam, Where: "json", Method: "POST", Path: "/api/items",
					Headers: [][2]string{{"Host", "api.example"}, {"Content-Type", "application/json"}, {"Content-Length", fmt.Sprint(len(body))}},
					Body:    string(body)}, held})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return out, used, nil
}
