package supervisor

import "testing"

func TestStartCommand(t *testing.T) {
	for _, tc := range []struct{ socket, want string }{
		{"/home/u/portal/.run/supervisor.sock", "supervisord -c examples/supervisord.conf"},
		{"/var/run/supervisor.sock", "supervisord -c /etc/supervisor/supervisord.conf"},
		{"", "supervisord -c /etc/supervisor/supervisord.conf"},
		{"/x/.run/supervisor.sock.old", "supervisord -c /etc/supervisor/supervisord.conf"},
	} {
		if got := StartCommand(tc.socket); got != tc.want {
			t.Errorf("StartCommand(%q) = %q, want %q", tc.socket, got, tc.want)
		}
	}
}
