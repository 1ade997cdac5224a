package idle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// IsSSHSession reports whether a process command line (/proc/<pid>/cmdline,
// NUL-separated) is a logged-in SSH session: OpenSSH retitles each
// session's process "sshd: USER@pts/N" (or USER@notty without a terminal;
// "sshd-session: …" from OpenSSH 9.8). Listeners ("sshd: /usr/sbin/sshd
// -D [listener] …"), pre-authentication children ("sshd: USER [priv]",
// "[net]", "[accepted]") are not sessions. In a container this works where
// utmp does not: sshd there often has no utmp to write.
func IsSSHSession(cmdline []byte) bool {
	line := string(bytes.TrimRight(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), " "))
	rest, ok := strings.CutPrefix(line, "sshd: ")
	if !ok {
		rest, ok = strings.CutPrefix(line, "sshd-session: ")
	}
	if !ok || strings.ContainsAny(rest, "[/ ") && !strings.Contains(rest, "@") {
		return false
	}
	user, tty, ok := strings.Cut(rest, "@")
	if !ok || user == "" || strings.ContainsAny(user, " []") {
		return false
	}
	return strings.HasPrefix(tty, "pts/") || strings.HasPrefix(tty, "tty") || tty == "notty"
}

// SSHSessions counts the SSH session processes under procRoot ("/proc").
// Unreadable entries (processes that ended meanwhile) are skipped.
func SSHSessions(procRoot string) int {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, name, "cmdline"))
		if err == nil && IsSSHSession(b) {
			n++
		}
	}
	return n
}
