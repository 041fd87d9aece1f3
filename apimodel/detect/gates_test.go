package detect

import (
	"regexp"
	"testing"
)

// TestShellCommandGateCoversRegex: wherever rce-unix-command's own regex
// matches at a separator, the gate passes there (a gate may only skip
// what the regex would not match), and plain prose after a separator is
// skipped without running the regex.
func TestShellCommandGateCoversRegex(t *testing.T) {
	d := newDetector(t, Config{})
	var re *regexp.Regexp
	for _, r := range d.rules {
		if r.ID == "rce-unix-command" {
			re = r.re
			if r.gate == nil {
				t.Fatal("rce-unix-command has no gate")
			}
		}
	}
	if re == nil {
		t.Fatal("rce-unix-command not loaded")
	}
	var payloads []string
	for w := range shellCommandWords {
		payloads = append(payloads, ";"+w+" -x", "| "+w+" /etc/passwd", "&&"+w, "$("+w+" -a)", "`/usr/bin/"+w+" ~`", "\n/bin/"+w+" ..")
	}
	payloads = append(payloads, ";python3.11 -c x", "|gcc-12 -o x", ";apt-get install x", ";ping6 -c1 h", ";clang++ -x",
		";ansible-playbook x.yml", ";redis-cli -h x", ";aa-exec -p x", ";chef-client -z", ";lwp-download http://x",
		"; sudo -u root cat /etc/shadow", "; timeout -s 9 5 nc -e /bin/sh h 1", "{ id; }", ";pip3.12 install x", ";lua5.4 -e x",
		";perl5 -e x", ";php8 -r x", "; nice -n -5 bash -i", ";ssh-keygen -t rsa", ";base64 -d")
	matched := 0
	for _, p := range payloads {
		if !re.MatchString(p) {
			continue
		}
		matched++
		if !shellCommandWordGate([]byte(p), 0) {
			t.Errorf("regex matches %q but the gate skips it", p)
		}
	}
	if matched < len(shellCommandWords) {
		t.Errorf("only %d of %d payloads matched the regex: the test lost its meaning", matched, len(payloads))
	}
	for _, benign := range []string{"rock & roll", "Mozilla/5.0 (X11; Linux x86_64)", "a; b", "{\"catalog\":1}", "tom & jerry", "$(document)"} {
		for i := range len(benign) {
			if c := benign[i]; c == ';' || c == '&' || c == '|' || c == '{' || (c == '$' && i+1 < len(benign) && benign[i+1] == '(') {
				if shellCommandWordGate([]byte(benign), i) {
					t.Errorf("gate passes prose %q at %d", benign, i)
				}
			}
		}
	}
}

// TestAnchorLimitFallsBackToFullRun: a value padded with more separators
// than maxAnchorTries is still searched whole, so padding hides nothing.
func TestAnchorLimitFallsBackToFullRun(t *testing.T) {
	d := newDetector(t, Config{})
	pad := ""
	for range maxAnchorTries + 5 {
		pad += "& "
	}
	fs := d.Inspect(post("/x", jsonCT, `{"q":"`+pad+`; cat /etc/passwd"}`), "svc")
	if !fired(fs, "rce-unix-command") {
		t.Fatalf("padded command not found: %+v", fs)
	}
}
