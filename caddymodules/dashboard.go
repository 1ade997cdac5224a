package caddymodules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/web"
)

func init() {
	caddy.RegisterModule(DashboardFS{})
}

const (
	// dashboardFSName is the name the file system is registered under in
	// the caddy.filesystems app, and the file_server's "fs".
	dashboardFSName = "dashboard"
	// dashboardEtagSuffix names the virtual sidecar files that carry each
	// asset's content hash, read by file_server's etag_file_extensions.
	dashboardEtagSuffix = ".etag"
	// dashboardInfoPath answers the few settings the page cannot learn from
	// the other APIs.
	dashboardInfoPath = "/api/dashboard"
)

// DashboardFS is the dashboard embedded in the binary (web/dashboard) as a
// Caddy file system, module caddy.fs.dashboard. Stock file_server serves it
// with "fs": "dashboard", so the portal writes no static-file handler.
//
// Embedded files have no modification time, so file_server would send
// neither Last-Modified nor an ETag and a browser could only re-download or
// trust a stale copy. Every file X therefore has a virtual sidecar
// "X.etag" holding a strong ETag of its content (a SHA-256 prefix);
// file_server reads it with "etag_file_extensions": [".etag"] and answers
// revalidations with 304. The sidecars are hidden from requests with
// "hide": ["*.etag"].
//
// Caddyfile (global option of Caddy's caddyfs module):
//
//	{
//		filesystem dashboard dashboard
//	}
type DashboardFS struct {
	files fs.FS
	etags map[string]string
}

// CaddyModule returns the Caddy module information.
func (DashboardFS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.fs.dashboard", New: func() caddy.Module { return new(DashboardFS) }}
}

// dashboardEtags hashes the embedded files once per process: they cannot
// change while the binary runs, and a reload must not hash them again.
var dashboardEtags = sync.OnceValues(func() (map[string]string, error) {
	files := web.Dashboard()
	etags := map[string]string{}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return etags, err
})

// Provision loads the embedded files and their ETags.
func (d *DashboardFS) Provision(caddy.Context) error {
	etags, err := dashboardEtags()
	if err != nil {
		return err
	}
	d.files, d.etags = web.Dashboard(), etags
	return nil
}

// Open implements fs.FS. Names follow io/fs rules: a name with "..", a
// leading "/" or an empty element is refused with fs.ErrInvalid before
// anything is looked up, whatever the caller did to the request path.
func (d *DashboardFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if d.files == nil {
		// Not provisioned: refuse rather than panic.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if base, ok := strings.CutSuffix(name, dashboardEtagSuffix); ok {
		if tag, ok := d.etags[base]; ok {
			return &memFile{name: name, Reader: bytes.NewReader([]byte(tag))}, nil
		}
	}
	return d.files.Open(name)
}

// UnmarshalCaddyfile accepts the bare module name: the dashboard has no
// options.
//
//	dashboard
func (d *DashboardFS) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next() // the module name
	if disp.NextArg() {
		return disp.ArgErr()
	}
	if disp.NextBlock(0) {
		return disp.Errf("the dashboard file system has no options, got %q", disp.Val())
	}
	return nil
}

// memFile is one virtual ETag sidecar: read-only bytes in memory.
type memFile struct {
	name string
	*bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memFileInfo{f}, nil }
func (f *memFile) Close() error               { return nil }

type memFileInfo struct{ f *memFile }

func (i memFileInfo) Name() string       { return i.f.name[strings.LastIndexByte(i.f.name, '/')+1:] }
func (i memFileInfo) Size() int64        { return i.f.Size() }
func (i memFileInfo) Mode() fs.FileMode  { return 0o444 }
func (i memFileInfo) ModTime() time.Time { return time.Time{} }
func (i memFileInfo) IsDir() bool        { return false }
func (i memFileInfo) Sys() any           { return nil }

// dashboardFilesystems is Caddy's caddy.filesystems app holding the
// dashboard file system, where file_server finds it by name.
func dashboardFilesystems(warns *[]caddyconfig.Warning) json.RawMessage {
	return caddyconfig.JSON(map[string]any{
		"filesystems": []map[string]any{{
			"name":        dashboardFSName,
			"file_system": caddyconfig.JSONModuleObject(DashboardFS{}, "backend", "dashboard", warns),
		}},
	}, warns)
}

// dashboardInfo is what /api/dashboard tells the page: nothing secret, only
// what no other API answers.
type dashboardInfo struct {
	// InstanceLabel is VAST_CONTAINERLABEL ("C.12345"), the name the user
	// knows the instance by; empty when unset.
	InstanceLabel string `json:"instance_label"`
	// TunnelScheme is the scheme of the ports the portal serves
	// (portalconfig.Plan.Scheme: https only when TLS is really on), which
	// its own quick tunnels target, so that a tunnel the page creates for
	// an app is the same tunnel the portal would create.
	TunnelScheme string `json:"tunnel_scheme"`
	// LogArchiveDir is the directory "Download all logs" archives (the log
	// directory's parent, as the logstream handler serves it), so the
	// button names what it downloads (.run under make run, not /var/log).
	LogArchiveDir string `json:"log_archive_dir"`
}

// dashboardSecurityHeaders apply to every dashboard file. The CSP allows
// only the page's own script, styles and API (plus WebSockets, which older
// Safari does not match with 'self'); frames are refused, since the page
// has buttons that act.
var dashboardSecurityHeaders = http.Header{
	"Content-Security-Policy": {"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
	"X-Content-Type-Options": {"nosniff"},
	"X-Frame-Options":        {"DENY"},
	"Referrer-Policy":        {"no-referrer"},
}

// dashboardInfoHandler answers /api/dashboard.
func dashboardInfoHandler(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) json.RawMessage {
	info := caddyconfig.JSON(dashboardInfo{InstanceLabel: plan.Settings.ContainerLabel, TunnelScheme: plan.Scheme,
		LogArchiveDir: logArchiveDir(plan)}, warns)
	return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString("200"),
		Headers: http.Header{
			"Content-Type":           {"application/json"},
			"Cache-Control":          {"no-store"},
			"X-Content-Type-Options": {"nosniff"},
		},
		Body: string(info) + "\n",
	}, "handler", "static_response", warns)
}

// dashboardIndexHandlers serve the page itself, never stored: index.html
// is the entry point of a new version.
func dashboardIndexHandlers(warns *[]caddyconfig.Warning) []json.RawMessage {
	return dashboardFileHandlers("no-store", warns)
}

// dashboardFilesRoute serves every other path from the dashboard's files,
// revalidated on every use with their ETag (304 when unchanged), so an
// upgrade of the binary shows at once without re-downloading unchanged
// files. It comes last: it answers whatever no earlier route claimed.
func dashboardFilesRoute(warns *[]caddyconfig.Warning) caddyhttp.Route {
	return terminal(caddyhttp.Route{HandlersRaw: dashboardFileHandlers("no-cache", warns)})
}

func dashboardFileHandlers(cacheControl string, warns *[]caddyconfig.Warning) []json.RawMessage {
	set := http.Header{"Cache-Control": {cacheControl}}
	for k, v := range dashboardSecurityHeaders {
		set[k] = v
	}
	return []json.RawMessage{
		caddyconfig.JSONModuleObject(headers.Handler{Response: &headers.RespHeaderOps{
			HeaderOps: &headers.HeaderOps{Set: set},
			Deferred:  true,
		}}, "handler", "headers", warns),
		caddyconfig.JSONModuleObject(fileserver.FileServer{
			FileSystem:         dashboardFSName,
			IndexNames:         []string{"index.html"},
			Hide:               []string{"*" + dashboardEtagSuffix},
			EtagFileExtensions: []string{dashboardEtagSuffix},
		}, "handler", "file_server", warns),
	}
}

// Interface guards
var (
	_ fs.FS                 = (*DashboardFS)(nil)
	_ caddy.Provisioner     = (*DashboardFS)(nil)
	_ caddyfile.Unmarshaler = (*DashboardFS)(nil)
	_ io.ReadSeeker         = (*memFile)(nil)
)
