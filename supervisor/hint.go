package supervisor

import "strings"

// CheckoutSocketSuffix ends the socket `make run` points the portal at
// (scripts/run-example.sh: <checkout>/.run/supervisor.sock), the one
// examples/supervisord.conf serves.
const CheckoutSocketSuffix = "/.run/supervisor.sock"

// StartCommand is the command that starts a supervisord on socket, for a
// user who sees ErrNotRunning (issue 21): from a checkout (make run),
// examples/supervisord.conf run from the repository root; elsewhere the
// image's own configuration, which its entrypoint normally starts.
func StartCommand(socket string) string {
	if strings.HasSuffix(socket, CheckoutSocketSuffix) {
		return "supervisord -c examples/supervisord.conf"
	}
	return "supervisord -c /etc/supervisor/supervisord.conf"
}
