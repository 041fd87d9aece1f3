package detect

// Rule gates run at an anchored rule's keyword position before its regex:
// a Go test of the few bytes there is far cheaper than starting a large
// alternation in the regexp engine (rce-unix-command: ~20 us per plain GET
// with a "&" in its query, before the gate). A gate may pass more than the
// regex matches, never less.

type gateFunc func(canon []byte, at int) bool

func ruleGate(name string) gateFunc {
	switch name {
	case "shell-command-word":
		return shellCommandWordGate
	}
	return familyGate(name)
}

// shellCommandWords holds the first word of every command
// rce-unix-command's regex knows (TestShellCommandGateCoversRegex checks
// each of them), cut where the gate cuts: at the first byte outside
// [a-z0-9_], trailing digits removed when the word has letters.
var shellCommandWords = map[string]struct{}{
	"7z": {}, "aa": {}, "adduser": {}, "alias": {}, "ansible": {}, "apk": {}, "apparmor_parser": {},
	"apt": {}, "aptitude": {}, "aria2c": {}, "arp": {}, "at": {}, "awk": {}, "base32": {},
	"base64": {}, "bash": {}, "batch": {}, "bc": {}, "bg": {}, "bridge": {}, "bsdtar": {},
	"builtin": {}, "busybox": {}, "bzip2": {}, "c89": {}, "c99": {}, "cal": {}, "cargo": {},
	"cat": {}, "chattr": {}, "chef": {}, "chgrp": {}, "chmod": {}, "chown": {}, "chpasswd": {},
	"chroot": {}, "clang": {}, "cmake": {}, "cmp": {}, "column": {}, "comm": {}, "command": {},
	"cp": {}, "cpulimit": {}, "crictl": {}, "crontab": {}, "cscli": {}, "csh": {}, "csplit": {},
	"curl": {}, "cut": {}, "dash": {}, "date": {}, "dc": {}, "dd": {}, "declare": {}, "diff": {},
	"dig": {}, "dir": {}, "disown": {}, "dmesg": {}, "dnf": {}, "doas": {}, "docker": {}, "dpkg": {},
	"echo": {}, "ed": {}, "egrep": {}, "emacs": {}, "env": {}, "eval": {}, "exec": {}, "expand": {},
	"expect": {}, "export": {}, "expr": {}, "false": {}, "fetch": {}, "fg": {}, "fgrep": {},
	"file": {}, "find": {}, "flock": {}, "fmt": {}, "fold": {}, "ftp": {}, "g": {}, "gawk": {},
	"gcc": {}, "gdb": {}, "gem": {}, "getenforce": {}, "git": {}, "go": {}, "gpg": {}, "gradle": {},
	"grep": {}, "gunzip": {}, "gzip": {}, "head": {}, "hexdump": {}, "history": {}, "host": {},
	"hostname": {}, "hostnamectl": {}, "htop": {}, "iconv": {}, "id": {}, "ifconfig": {},
	"install": {}, "ip": {}, "iptables": {}, "irb": {}, "java": {}, "javac": {}, "jjs": {},
	"jobs": {}, "join": {}, "jrunscript": {}, "kill": {}, "killall": {}, "ksh": {}, "kubectl": {},
	"last": {}, "ldd": {}, "less": {}, "ll": {}, "ln": {}, "locate": {}, "ls": {}, "lsb_release": {},
	"lsof": {}, "ltrace": {}, "lua": {}, "lwp": {}, "make": {}, "masscan": {}, "mawk": {},
	"mkdir": {}, "mkfifo": {}, "mknod": {}, "mongo": {}, "mongosh": {}, "more": {}, "mount": {},
	"mv": {}, "mvn": {}, "mysql": {}, "nano": {}, "nawk": {}, "nc": {}, "ncat": {}, "netcat": {},
	"netstat": {}, "nft": {}, "nice": {}, "nl": {}, "nmap": {}, "node": {}, "nodejs": {}, "nohup": {},
	"npm": {}, "npx": {}, "nslookup": {}, "objdump": {}, "od": {}, "openssl": {}, "pacman": {},
	"passwd": {}, "paste": {}, "perf": {}, "perl": {}, "php": {}, "ping": {}, "ping6": {}, "pip": {},
	"pipx": {}, "pkexec": {}, "pkill": {}, "podman": {}, "pr": {}, "printenv": {}, "printf": {},
	"ps": {}, "psql": {}, "python": {}, "read": {}, "readelf": {}, "redis": {}, "rev": {}, "rm": {},
	"rmdir": {}, "rmt": {}, "route": {}, "rpm": {}, "rsync": {}, "ruby": {}, "scp": {}, "screen": {},
	"script": {}, "sed": {}, "seq": {}, "service": {}, "sestatus": {}, "set": {}, "setenforce": {},
	"setfacl": {}, "sftp": {}, "sh": {}, "shred": {}, "sleep": {}, "snap": {}, "socat": {},
	"sort": {}, "source": {}, "split": {}, "sqlite3": {}, "ss": {}, "ssh": {}, "stat": {},
	"stdbuf": {}, "strace": {}, "strings": {}, "su": {}, "sudo": {}, "svn": {}, "systemctl": {},
	"tac": {}, "tail": {}, "tar": {}, "tclsh": {}, "tcpdump": {}, "tcsh": {}, "tee": {}, "telnet": {},
	"test": {}, "tftp": {}, "time": {}, "timeout": {}, "tmux": {}, "top": {}, "touch": {},
	"traceroute": {}, "trap": {}, "tree": {}, "true": {}, "type": {}, "typeset": {}, "ufw": {},
	"ulimit": {}, "umount": {}, "unalias": {}, "uname": {}, "uniq": {}, "unzip": {}, "useradd": {},
	"usermod": {}, "vdir": {}, "vi": {}, "vim": {}, "visudo": {}, "w": {}, "wait": {}, "watch": {},
	"wc": {}, "wget": {}, "whereis": {}, "which": {}, "who": {}, "whoami": {}, "whois": {},
	"wish": {}, "xargs": {}, "xxd": {}, "xz": {}, "yarn": {}, "yes": {}, "yum": {}, "zip": {},
	"zsh": {}, "zypper": {},
}

// shellCommandWordGate reports whether a command word follows the shell
// separator at canon[at]: the separator ("$(" or one byte), blanks, an
// optional /bin/, /sbin/, /usr/bin/ or /usr/sbin/, then a word of the set.
func shellCommandWordGate(canon []byte, at int) bool {
	i := at + 1
	if canon[at] == '$' {
		i++
	}
	for i < len(canon) && isRegexSpace(canon[i]) {
		i++
	}
	for _, p := range [...]string{"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"} {
		if len(canon)-i >= len(p) && string(canon[i:i+len(p)]) == p {
			i += len(p)
			break
		}
	}
	j := i
	for j < len(canon) && j-i < 32 && isWordByte(canon[j]) {
		j++
	}
	if j == i {
		return false
	}
	w := canon[i:j]
	if _, ok := shellCommandWords[string(w)]; ok {
		return true
	}
	k := len(w)
	for k > 1 && w[k-1] >= '0' && w[k-1] <= '9' {
		k--
	}
	_, ok := shellCommandWords[string(w[:k])]
	return ok
}

// isRegexSpace is RE2's \s.
func isRegexSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}
