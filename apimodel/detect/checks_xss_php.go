package detect

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Value checks of the XSS (941), PHP (933) and Node.js (934) family
// rules that a regular expression cannot express on its own: a set of
// PHP ini directive names, escapes and blanks removed before a pattern,
// a base64 payload decoded first.

func xssPHPRequestCheck(name string) requestCheckFunc {
	if name == "xss-skipped-header" {
		return checkXSSSkippedHeader
	}
	return nil
}

func xssPHPValueCheck(name string) checkFunc {
	switch name {
	case "xss-escaped-nul-tag":
		return checkEscapedNulTag
	case "php-ini-directive-set":
		return checkPHPIniDirective
	case "php-call-chain":
		return checkPHPCallChain
	case "nodejs-base64-payload":
		return checkNodeBase64
	case "nodejs-spaced-code":
		return checkNodeSpaced
	case "data-uri-code":
		return checkDataURICode
	}
	return nil
}

// checkEscapedNulTag finds an active tag whose name is split by the
// two-byte JavaScript escape \0 (<scr\0ipt>): a browser-side decoder
// turns it into a NUL, which HTML parsers drop.
func checkEscapedNulTag(decoded string, _ []byte) bool {
	if !strings.Contains(decoded, `\0`) || strings.IndexByte(decoded, '<') < 0 {
		return false
	}
	return checkObfuscatedTag(strings.ReplaceAll(decoded, `\0`, "\x00"), nil)
}

// phpIniNames are php.ini directives that only mean something to PHP.
// Directives named by plain English words (engine, extension, precision,
// smtp, user_agent) are left out: "engine=google" is as likely a query
// string inside a URL value.
var phpIniNames = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`allow_url_fopen allow_url_include always_populate_raw_post_data
		arg_separator.input arg_separator.output asp_tags auto_append_file auto_prepend_file
		auto_detect_line_endings auto_globals_jit browscap child_terminate default_charset
		default_mimetype default_socket_timeout disable_classes disable_functions display_errors
		display_startup_errors doc_root docref_ext docref_root enable_dl enable_post_data_reading
		error_append_string error_log error_prepend_string error_reporting exit_on_timeout expose_php
		extension_dir file_uploads html_errors ignore_repeated_errors ignore_repeated_source
		ignore_user_abort implicit_flush include_path input_encoding internal_encoding output_encoding
		log_errors log_errors_max_len magic_quotes_gpc magic_quotes_runtime magic_quotes_sybase
		max_execution_time max_file_uploads max_input_nesting_level max_input_time max_input_vars
		memory_limit open_basedir output_buffering output_handler post_max_size realpath_cache_size
		realpath_cache_ttl register_argc_argv register_globals register_long_arrays report_memleaks
		report_zend_debug request_order safe_mode safe_mode_exec_dir safe_mode_gid
		safe_mode_include_dir safe_mode_allowed_env_vars safe_mode_protected_env_vars sendmail_from
		sendmail_path serialize_precision short_open_tag sql.safe_mode sys_temp_dir track_errors
		track_vars unserialize_callback_func unserialize_max_depth upload_max_filesize upload_tmp_dir
		variables_order xmlrpc_errors xmlrpc_error_number y2k_compliance zend_extension
		zend_extension_ts hard_timeout mail.add_x_header mail.force_extra_parameters mail.log
		mail.mixed_lf_and_crlf date.timezone date.default_latitude date.default_longitude
		date.sunrise_zenith date.sunset_zenith filter.default filter.default_flags curl.cainfo
		openssl.cafile openssl.capath cli.pager cli.prompt expect.timeout expect.loguser
		expect.logfile expect.match_max gd.jpeg_ignore_warning ldap.max_links imap.enable_insecure_rsh
		com.allow_dcom com.autoregister_typelib com.autoregister_verbose com.autoregister_casesensitive
		com.code_page com.typelib_file com.dotnet_version
		session.save_path session.save_handler session.name session.auto_start session.cookie_lifetime
		session.cookie_path session.cookie_domain session.cookie_secure session.cookie_httponly
		session.cookie_samesite session.serialize_handler session.gc_probability session.gc_divisor
		session.gc_maxlifetime session.use_strict_mode session.use_cookies session.use_only_cookies
		session.referer_check session.cache_limiter session.cache_expire session.use_trans_sid
		session.trans_sid_tags session.trans_sid_hosts session.sid_length
		session.sid_bits_per_character session.lazy_write session.hash_function
		session.hash_bits_per_character session.entropy_file session.entropy_length
		session.bug_compat_42 session.bug_compat_warn session.upload_progress.enabled
		session.upload_progress.cleanup session.upload_progress.prefix session.upload_progress.name
		session.upload_progress.freq session.upload_progress.min_freq`) {
		m[w] = true
	}
	return m
}()

// phpIniSections are extension prefixes whose every "prefix.name" is a
// PHP directive: nothing else spells apc.enabled or opcache.preload.
var phpIniSections = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`apc apcu opcache mbstring xdebug pcre phar highlight zlib mysqli mysql
		mysqlnd pdo_mysql pdo_odbc pgsql sqlite3 odbc ibase mssql oci8 sybct cgi fastcgi cli_server suhosin
		memcache memcached iconv intl exif uploadprogress user_ini zend ffi yaz zookeeper ibm_db2 imagick
		mailparse tidy url_rewriter xsl mcrypt bcmath geoip soap assert sybase birdstep ifx mime_magic
		runkit xmlrpc blackfire newrelic swoole`) {
		m[w] = true
	}
	return m
}()

// checkPHPIniDirective finds "directive = value" for a PHP ini
// directive anywhere in the value (after a blank, separator or the
// start): what a value smuggled into ini_set, .user.ini or a
// PHP_VALUE FastCGI parameter looks like.
func checkPHPIniDirective(_ string, canon []byte) bool {
	for i := bytes.IndexByte(canon, '='); i >= 0; {
		if i+1 < len(canon) && canon[i+1] != '=' && (i == 0 || canon[i-1] != '=' && canon[i-1] != '!' && canon[i-1] != '<' && canon[i-1] != '>') {
			j := i
			for j > 0 && canon[j-1] == ' ' {
				j--
			}
			k := j
			for k > 0 && j-k < 64 && (isWordByte(canon[k-1]) || canon[k-1] == '.') {
				k--
			}
			if k < j && (k == 0 || !isWordByte(canon[k-1])) && phpIniName(string(canon[k:j])) {
				return true
			}
		}
		n := bytes.IndexByte(canon[i+1:], '=')
		if n < 0 {
			break
		}
		i += 1 + n
	}
	return false
}

func phpIniName(w string) bool {
	w = strings.TrimLeft(w, ".")
	if phpIniNames[w] {
		return true
	}
	if sec, rest, ok := strings.Cut(w, "."); ok && rest != "" && phpIniSections[sec] {
		return true
	}
	return false
}

// phpCallChain matches, in a value with blanks removed, PHP callables
// that are not names: a parenthesised expression, an array or string
// offset, a variable or a quoted name, called and the statement closed
// with ");" (933210's shape). A cast to string before a name is the
// other form ((string)x('y');).
var phpCallChain = regexp.MustCompile(`\([\w$.\[\]{}\\]*['"$\[][\w$'".\[\]{}\\]*\)(?:['"][\w-]+['"])?\([^;]*\);|\([\w.\\]+\)\(['"$\d][^;]*\);|(?:\[\d+\]|\{\d+\}|\$[^(),./;\\\s]+|['"][\w\\-]+['"])\([^;]*\);|\(\w*string\w*\)[\w'".\[\]{}-]+\([^)]*\);`)

// checkPHPCallChain strips blanks (closed comments are already gone in
// the canonical form) and matches phpCallChain. A parenthesised callee
// holds only names, quotes, variables, offsets and concatenation, and a
// bare name in parentheses needs a quoted, variable or numeric first
// argument, so "(price)(qty);" and "(x+1)(x-1);" stay text.
func checkPHPCallChain(_ string, canon []byte) bool {
	if len(canon) > 4096 {
		canon = canon[:4096]
	}
	var buf [512]byte
	c := buf[:0]
	for _, b := range canon {
		if b != ' ' && b != '\n' {
			c = append(c, b)
		}
	}
	return phpCallChain.Match(c)
}

// nodeCode is what decoded Node.js payloads (base64 of a
// node-serialize gadget, of require() or of a loop) contain.
var nodeCode = regexp.MustCompile(`(?i)_\$\$nd_func\$\$_|__js_function|\brequire\s*\(|child_process|\bprocess\s*(?:\.\s*(?:env|mainmodule|binding|exit|kill|cwd|argv)\b|\[)|\beval\s*\(|\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{|\bthis\s*\.\s*constructor\b|\bmodule\s*\.\s*exports\b|\bconsole\s*\.\s*(?:log|error|warn|info|debug|trace|dir)\s*\(|\bstring\s*\.\s*fromcharcode\b|\bwhile\s*\(\s*(?:true|1|!0|!false)\s*\)|\bglobal(?:this)?\s*(?:\.\s*process|\[)`)

// checkNodeBase64 decodes a value that is one base64 token (standard or
// URL alphabet, padded or not) and looks for Node.js code in it, also
// after undoing \uXXXX and \xXX escapes.
func checkNodeBase64(decoded string, _ []byte) bool {
	v := strings.TrimSpace(decoded)
	if len(v) < 8 || len(v) > 8192 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	raw := strings.TrimRight(v, "=")
	var out []byte
	var err error
	if strings.ContainsAny(raw, "-_") {
		out, err = base64.RawURLEncoding.DecodeString(raw[:len(raw)/4*4+rawTail(len(raw))])
	} else {
		out, err = base64.RawStdEncoding.DecodeString(raw[:len(raw)/4*4+rawTail(len(raw))])
	}
	if err != nil || len(out) == 0 {
		return false
	}
	s := string(out)
	if strings.IndexByte(s, '\\') >= 0 {
		s = unescapeBackslash(s)
	}
	return nodeCode.MatchString(s)
}

// rawTail is how many trailing characters of an unpadded base64 string
// of length n can be decoded (a single leftover character cannot).
func rawTail(n int) int {
	if r := n % 4; r > 1 {
		return r
	}
	return 0
}

// nodeSpaced matches Node.js code once every blank is removed.
var nodeSpaced = regexp.MustCompile(`require\(|require\.(?:main|cache|resolve|extensions)|child_process|process\.(?:env|mainmodule|binding|exit|kill|cwd|argv|global)|process\[|eval\(|newfunction\(|function\(\)\{|this\.constructor|module\.exports|console\.(?:log|error|warn|info|debug|trace|dir)\(|string\.fromcharcode|while\((?:true|1|!0|!false)\)`)

// checkNodeSpaced catches code whose names are broken up by blanks
// ("r e q u i r e ( 'fs' )"): at least three one-letter words in a row
// gate a copy of the value without blanks, matched against nodeSpaced.
func checkNodeSpaced(_ string, canon []byte) bool {
	run, best := 0, 0
	for i := 0; i+1 < len(canon); i++ {
		if isLetter(canon[i]) && canon[i+1] == ' ' && (i == 0 || canon[i-1] == ' ') {
			run++
			best = max(best, run)
			i++
			continue
		}
		if canon[i] != ' ' {
			run = 0
		}
	}
	if best < 3 {
		return false
	}
	if len(canon) > 4096 {
		canon = canon[:4096]
	}
	var buf [512]byte
	c := buf[:0]
	for _, b := range canon {
		if b != ' ' && b != '\n' && b != '\t' {
			c = append(c, b)
		}
	}
	return nodeSpaced.Match(c)
}

// checkXSSSkippedHeader looks for a script tag or an event handler
// attribute (on<letters>= after a separator) in the headers the value
// scan skips (Accept, Authorization, Cache-Control...): reflected into
// an error page or a log viewer, they carry XSS as well as any other
// header. Framing headers and cookies are judged elsewhere. The
// evidence of a credential header is not shown.
func checkXSSSkippedHeader(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	judge := func(h *call.Header, credential bool) (string, string, bool) {
		v := h.Value
		if len(v) > 8192 {
			v = v[:8192]
		}
		if !headerMarkup(v) {
			return "", "", false
		}
		if credential {
			return "header:" + h.Name, "event handler or script tag in a credential", true
		}
		return "header:" + h.Name, v, true
	}
	if hx != nil {
		cred := hx.pos[hkAuthorization] | hx.pos[hkProxyAuthorization]
		for m := hx.skip &^ (hx.pos[hkCookie] | hx.pos[hkHost] | hx.pos[hkContentLength] | hx.pos[hkTransferEncoding]); m != 0; m &= m - 1 {
			i := first(m)
			if p, e, ok := judge(&req.Headers[i], cred&(1<<i) != 0); ok {
				return p, e, ok
			}
		}
		return "", "", false
	}
	for i := range req.Headers {
		h := &req.Headers[i]
		ln := lowerHeaderName(h.Name)
		if !skipHeaders[ln] || ln == "cookie" || ln == "host" || ln == "content-length" || ln == "transfer-encoding" {
			continue
		}
		if p, e, ok := judge(h, ln == "authorization" || ln == "proxy-authorization"); ok {
			return p, e, ok
		}
	}
	return "", "", false
}

// headerMarkup reports whether v holds "<script" followed by a blank,
// '/' or '>', or an event handler attribute: "on" after a blank, quote,
// '/', ';', '(', ',', '=', '`', '.' or digit, three or more letters,
// optional blanks, '(', ',' or ';', then '=' not followed by '='. A byte
// loop, since it runs on every request's Accept and Content-Type.
func headerMarkup(v string) bool {
	for i := 0; i+1 < len(v); i++ {
		c := v[i]
		if c == '<' {
			if len(v)-i > 7 && asciiLowerEq(v[i+1:i+7], "script") {
				if d := v[i+7]; d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == '\f' || d == '/' || d == '>' {
					return true
				}
			}
			continue
		}
		if c|0x20 != 'o' || v[i+1]|0x20 != 'n' || i == 0 || !handlerSep(v[i-1]) {
			continue
		}
		j := i + 2
		for j < len(v) && j-i < 52 && v[j]|0x20 >= 'a' && v[j]|0x20 <= 'z' {
			j++
		}
		if j-i-2 < 3 {
			continue
		}
		for j < len(v) && (isRegexSpace(v[j]) || v[j] == '(' || v[j] == ',' || v[j] == ';') {
			j++
		}
		if j+1 < len(v) && v[j] == '=' && v[j+1] != '=' {
			return true
		}
	}
	return false
}

func handlerSep(c byte) bool {
	return isRegexSpace(c) || c >= '0' && c <= '9' || strings.IndexByte("\"'/;(,=`.", c) >= 0
}

func asciiLowerEq(s, lower string) bool {
	for k := 0; k < len(lower); k++ {
		if s[k]|0x20 != lower[k] {
			return false
		}
	}
	return true
}

// checkDataURICode reports a base64 data: URI whose content opens server
// or browser code (<?php, <?=, <%, <script, a #! line): PHP includes a
// data: URI like a file (allow_url_include), and a browser runs a
// data:text/html one. The plain-text form of such a URI is already seen by
// the PHP and XSS rules; only the base64 form hides its content, so the
// first 384 bytes of it are decoded. A real image (data:image/png;base64,
// iVBOR...) decodes to binary and does not match.
func checkDataURICode(decoded string, _ []byte) bool {
	for off := 0; off < len(decoded); {
		i := indexFoldString(decoded[off:], "data:")
		if i < 0 {
			return false
		}
		i += off + len("data:")
		off = i
		comma := strings.IndexByte(decoded[i:min(len(decoded), i+128)], ',')
		if comma < 0 || !hasSuffixFold(decoded[i:i+comma], ";base64") {
			continue
		}
		b64 := decoded[i+comma+1:]
		n := 0
		for n < len(b64) && n < 512 && isBase64Byte(b64[n]) {
			n++
		}
		var buf [384]byte
		m, _ := base64.StdEncoding.Decode(buf[:], []byte(b64[:n&^3]))
		if codeOpener(buf[:m]) {
			return true
		}
	}
	return false
}

func isBase64Byte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
}

// codeOpener reports decoded content that starts code: a PHP, ASP/JSP or
// script tag anywhere, or a shebang at its start.
func codeOpener(b []byte) bool {
	if bytes.HasPrefix(b, []byte("#!/")) {
		return true
	}
	for i := bytes.IndexByte(b, '<'); i >= 0; {
		r := b[i+1:]
		if bytes.HasPrefix(r, []byte("?=")) || bytes.HasPrefix(r, []byte("%")) || len(r) >= 4 && bytes.EqualFold(r[:4], []byte("?php")) ||
			len(r) >= 6 && bytes.EqualFold(r[:6], []byte("script")) {
			return true
		}
		j := bytes.IndexByte(r, '<')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// indexFoldString is indexFold for a string.
func indexFoldString(s, needle string) int {
	for i := 0; i+len(needle) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(needle)], needle) {
			return i
		}
	}
	return -1
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
