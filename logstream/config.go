package logstream

import (
	"fmt"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// Config is every setting of the log viewer, declared once: the Caddy
// module embeds it (its JSON is this JSON), the Caddyfile walker fills the
// same fields by their JSON names, and docs/logstream.md's settings table
// is generated from it. A zero field means "use the default"
// (confdecl.FillDefaults with Default()).
type Config struct {
	// Dir is the directory whose *.log files are followed and streamed.
	// Placeholders such as {env.X} are resolved by the Caddy module.
	// Default: /var/log/portal.
	Dir string `json:"dir,omitempty"`
	// PlainDir holds the clean copies log-tee writes (NAME.log one
	// directory above the portal's log). Its *.log regular files, not
	// recursively, are added to the "everything" archive
	// (/api/logs/download?all=1) under their own names, beside Dir's files
	// under portal/. A missing directory is skipped. Default: /var/log.
	PlainDir string `json:"plain_dir,omitempty"`
	// MaxFiles is how many files are followed at once (a descriptor, a
	// tailer and a ring each): the most recently written ones. The rest
	// are listed by /api/logs/files with "followed": false, not opened,
	// and followed again when written to (replacing the least recently
	// written file that has been quiet for 10 s) or asked for by name.
	// Default: 256.
	MaxFiles int `json:"max_files,omitempty"`
	// RingLines is how many last lines each file keeps for clients that
	// join late. Default: 2000.
	RingLines int `json:"ring_lines,omitempty"`
	// RingBytes bounds one file's ring: the rendered lines plus 32 bytes
	// of bookkeeping per line. Default: 4194304, 4 MiB.
	RingBytes int `json:"ring_bytes,omitempty"`
	// TotalRingBytes bounds the rings of all files together: past it,
	// every ring above its fair share (total_ring_bytes / files followed)
	// drops its oldest lines down to that share. Default: 33554432,
	// 32 MiB.
	TotalRingBytes int `json:"total_ring_bytes,omitempty"`
	// CatchUpBytes is how far a file may run ahead of its tailer. A file
	// that grew by more than this since the last read (a burst, or a
	// viewer that fell behind) is skipped to its last catch_up_bytes,
	// with a line saying how much was skipped; an existing file is read
	// from that far before its end at start. Default: 1048576, 1 MiB.
	CatchUpBytes int `json:"catch_up_bytes,omitempty"`
	// BlockLines is the terminal height emulated once a file redraws
	// earlier lines (nested progress bars). Default: 24.
	BlockLines int `json:"block_lines,omitempty"`
	// MaxLineBytes caps one line; the rest is dropped with a marker.
	// Default: 65536.
	MaxLineBytes int `json:"max_line_bytes,omitempty"`
	// PollInterval drives the tailers and a directory scan where inotify
	// is unavailable; with inotify each file is also polled at 8× this as
	// a safety net. Default: 250ms.
	PollInterval confdecl.Duration `json:"poll_interval,omitempty"`
	// ForcePolling skips inotify (network filesystems, tests).
	// Default: none, inotify where it can be set up.
	ForcePolling bool `json:"force_polling,omitempty"`
	// AllowedOrigins are extra browser origins (host patterns such as
	// "*.example.com") allowed to open the WebSocket. Same-origin requests
	// and clients that send no Origin are always allowed. Default: none.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// QueueBytes bounds what waits for one client, in encoded bytes (the
	// bytes are shared by every client; this is what one client may hold
	// back). A client that lets it fill is told it lagged and gets one
	// fresh snapshot; three lags within 30 s drop it.
	// Default: 1048576, 1 MiB.
	QueueBytes int `json:"queue_bytes,omitempty"`
	// SnapshotBytes bounds the lines one client's snapshot carries (the
	// newest win), whatever tail and the number of files ask for.
	// Default: 4194304, 4 MiB.
	SnapshotBytes int `json:"snapshot_bytes,omitempty"`
	// MaxClients bounds the streams (WebSocket and Server-Sent Events)
	// open at once on one log directory: each holds a queue and, while it
	// joins, a snapshot (100 slow clients took 369 MB). A client over it is
	// answered 503 with Retry-After. Default: 32
	MaxClients int `json:"max_clients,omitempty"`
	// FlushInterval is the shortest time between two messages to one
	// client: under load, what arrives meanwhile goes out as one message
	// (at most 64 KiB each). A line on a quiet stream goes out at once.
	// Default: 2ms.
	FlushInterval confdecl.Duration `json:"flush_interval,omitempty"`
	// WriteTimeout drops a client that cannot take one message in time.
	// Default: 10s.
	WriteTimeout confdecl.Duration `json:"write_timeout,omitempty"`
	// PingInterval keeps tunnels and proxies from closing idle streams.
	// Default: 15s.
	PingInterval confdecl.Duration `json:"ping_interval,omitempty"`
}

// Default is the configuration used for every field left zero.
func Default() Config {
	return Config{
		Dir:            "/var/log/portal",
		PlainDir:       "/var/log",
		MaxFiles:       256,
		RingLines:      2000,
		RingBytes:      4 << 20,
		TotalRingBytes: 32 << 20,
		CatchUpBytes:   1 << 20,
		BlockLines:     DefaultBlockLines,
		MaxLineBytes:   DefaultMaxLineBytes,
		PollInterval:   confdecl.Duration(250 * time.Millisecond),
		QueueBytes:     1 << 20,
		SnapshotBytes:  4 << 20,
		MaxClients:     32,
		FlushInterval:  confdecl.Duration(2 * time.Millisecond),
		WriteTimeout:   confdecl.Duration(10 * time.Second),
		PingInterval:   confdecl.Duration(15 * time.Second),
	}
}

// Check checks the settings, before or after defaults are filled in
// (zero stands for the default), and names every bad field.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	// Each message names the setting by its JSON name, found from the
	// field itself (confdecl.Name), so no name is spelled twice.
	name := func(field any) string { return confdecl.Name(&c, field) }
	atLeast := func(v *int, lo int) {
		if *v != 0 {
			ck.AtLeast(name(v), int64(*v), int64(lo))
		}
	}
	atLeast(&c.MaxFiles, 1)
	atLeast(&c.RingLines, 1)
	atLeast(&c.RingBytes, 1024)
	atLeast(&c.TotalRingBytes, 1024)
	atLeast(&c.CatchUpBytes, 1024)
	atLeast(&c.BlockLines, 2)
	atLeast(&c.MaxLineBytes, 64)
	atLeast(&c.QueueBytes, 1024)
	atLeast(&c.SnapshotBytes, 1024)
	atLeast(&c.MaxClients, 1)
	// A poll below 10ms would spin; a ping or write timeout below it would
	// drop every client.
	minDur := func(d *confdecl.Duration, lo time.Duration) {
		if *d != 0 {
			ck.DurationAtLeast(name(d), *d, confdecl.Duration(lo))
		}
	}
	minDur(&c.PollInterval, 10*time.Millisecond)
	minDur(&c.WriteTimeout, 10*time.Millisecond)
	minDur(&c.PingInterval, 10*time.Millisecond)
	ck.NotNegativeDuration(name(&c.FlushInterval), c.FlushInterval)
	if c.FlushInterval > confdecl.Duration(time.Second) {
		ck.Failf(name(&c.FlushInterval), "must be at most 1s (it delays every line under load), got %v", c.FlushInterval)
	}
	for _, o := range c.AllowedOrigins {
		if o == "" {
			ck.Failf(name(&c.AllowedOrigins), "empty pattern")
		}
	}
	return ck.Err()
}

// filled is c with the defaults in place of zeros.
func (c Config) filled() Config {
	confdecl.FillDefaults(&c, Default())
	return c
}

// ServiceKey identifies the Service a config needs: configs with the same
// key share one (watcher, tailers, rings), across handlers and reloads.
// Only the fields the Service uses are part of it; the per-client ones
// (origins, queue, snapshot, flush, timeouts) may differ between handlers.
func ServiceKey(c Config) string {
	c = c.filled()
	return fmt.Sprintf("%s|files=%d|lines=%d|bytes=%d|total=%d|catchup=%d|block=%d|maxline=%d|poll=%v|force=%t",
		c.Dir, c.MaxFiles, c.RingLines, c.RingBytes, c.TotalRingBytes, c.CatchUpBytes, c.BlockLines, c.MaxLineBytes, c.PollInterval, c.ForcePolling)
}
