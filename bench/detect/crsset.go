package detectbench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
)

// CRSSetPath is the shared corpus made from CRS v4.25.0's regression tests
// (see /work/shared/corpus/README.md). The bench skips it when absent.
var CRSSetPath = envOr("AW_CRS_SET", "/work/shared/corpus/crs-v4.25.0-regression.jsonl")

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// crsCase is one line of the CRS regression corpus.
type crsCase struct {
	ID        string            `json:"id"`
	Class     string            `json:"class"`
	Malicious bool              `json:"malicious"`
	Ambiguous bool              `json:"ambiguous"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"`
	Meta      struct {
		File   string `json:"file"`
		RuleID int    `json:"rule_id"`
		PL     int    `json:"pl"`
	} `json:"meta"`
}

// CRSEntry is a regression case as a bench entry plus the paranoia level
// of the CRS rule it targets.
type CRSEntry struct {
	Entry
	PL     int
	RuleID int
	// Family is the CRS rule file number and the corpus class, e.g.
	// "944 java" or "934 prototype_pollution".
	Family string
	// HeldBack marks the fixed 30 % slice nobody looks at while writing
	// rules (see HeldBack).
	HeldBack bool
}

// HeldBack reports whether a case id belongs to the held-back slice: a
// fixed 30 % chosen by FNV-1a of the id, so the split never moves when
// the corpus or the rules change. Rule authors tune on the other 70 %
// only (explore tests skip held-back cases).
func HeldBack(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%100 < 30
}

// crsFamily turns "tests/regression/tests/REQUEST-944-APPLICATION-ATTACK-JAVA/..."
// and a class into "944 java".
func crsFamily(file, class string) string {
	num := "???"
	if i := strings.Index(file, "REQUEST-"); i >= 0 && len(file) >= i+11 {
		num = file[i+8 : i+11]
	}
	return num + " " + class
}

// LoadCRSSet reads the malicious cases of the CRS regression corpus (the
// ambiguous negative tests are single-rule checks, not benign traffic).
func LoadCRSSet(path string) ([]CRSEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read crs set: %w", err)
	}
	var out []CRSEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var c crsCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("crs set line %d: %w", n, err)
		}
		if !c.Malicious {
			continue
		}
		e := Entry{ID: c.ID, Class: c.Class, Method: c.Method, Body: c.Body, Where: "crs"}
		e.Path, e.Query, _ = strings.Cut(c.Path, "?")
		if e.Path == "" {
			e.Path = "/"
		}
		names := make([]string, 0, len(c.Headers))
		for k := range c.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			e.Headers = append(e.Headers, [2]string{k, c.Headers[k]})
		}
		out = append(out, CRSEntry{Entry: e, PL: c.Meta.PL, RuleID: c.Meta.RuleID,
			Family: crsFamily(c.Meta.File, c.Class), HeldBack: HeldBack(c.ID)})
	}
	return out, sc.Err()
}
