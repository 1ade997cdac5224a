package caddymodules

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/instanceportal/portal/vastauth"
)

func init() {
	caddy.RegisterModule(VastAuthRedact{})
}

// VastAuthRedact is a log field filter (caddy.logging.encoders.filter.
// vastauth_redact) that keeps vastauth's credentials out of access logs, by
// name and by value:
//
//   - a URI (request>uri, or any string field): the value of every
//     parameter named token or portal_handoff however it is spelled
//     (?Token=, ?token[]=, ;token=, %23token=, tok%65n=, nested in another
//     parameter's encoded value), and every parameter or path segment that
//     carries one of the secrets, whatever its name, become REDACTED;
//   - the request headers (request>headers): a value that carries a secret
//     becomes REDACTED, and Referer and Origin are redacted as URIs.
//     (Caddy already writes REDACTED for Cookie and Authorization.)
//
// It knows the secrets the same way vastauth does (SecretSource, usually
// {env.…} placeholders resolved here), so it cannot be configured apart
// from the handler.
type VastAuthRedact struct {
	vastauth.SecretSource

	redactor *vastauth.Redactor
}

// CaddyModule returns the Caddy module information.
func (VastAuthRedact) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.encoders.filter.vastauth_redact",
		New: func() caddy.Module { return new(VastAuthRedact) },
	}
}

// Provision resolves the secrets, exactly as vastauth does (the token
// generated under state_dir when none is set).
func (f *VastAuthRedact) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	src := f.SecretSource
	src.StateDir = repl.ReplaceAll(src.StateDir, "")
	if src.StateDir == "" {
		src.StateDir = vastauth.Default().StateDir
	}
	resolve := src.ResolveSecrets
	if onlyValidating() {
		resolve = src.CheckSecrets
	}
	secrets, err := resolve(func(s string) string { return repl.ReplaceAll(s, "") })
	if err != nil {
		return fmt.Errorf("vastauth_redact: %w", err)
	}
	f.redactor = vastauth.NewRedactor(secrets.Values)
	return nil
}

// Filter implements logging.LogFieldFilter.
func (f *VastAuthRedact) Filter(in zapcore.Field) zapcore.Field {
	switch v := in.Interface.(type) {
	case caddyhttp.LoggableHTTPHeader:
		return zap.Object(in.Key, f.headers(v))
	case caddyhttp.LoggableStringArray:
		out := make(caddyhttp.LoggableStringArray, len(v))
		for i, s := range v {
			out[i] = f.redactor.URI(s)
		}
		in.Interface = out
		return in
	}
	if in.Type == zapcore.StringType {
		in.String = f.redactor.URI(in.String)
	}
	return in
}

// headers is a copy of h with every value redacted (vastauth.Redactor.
// HeaderValue); h itself belongs to the request.
func (f *VastAuthRedact) headers(h caddyhttp.LoggableHTTPHeader) caddyhttp.LoggableHTTPHeader {
	out := caddyhttp.LoggableHTTPHeader{Header: make(http.Header, len(h.Header)), ShouldLogCredentials: h.ShouldLogCredentials}
	for name, vals := range h.Header {
		red := make([]string, len(vals))
		for i, v := range vals {
			red[i] = f.redactor.HeaderValue(name, v)
		}
		out.Header[name] = red
	}
	return out
}

// UnmarshalCaddyfile reads
//
//	vastauth_redact {
//	    secrets   <value> [<value>...]
//	    state_dir <dir>
//	}
func (f *VastAuthRedact) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // filter name
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, "vastauth_redact", &f.SecretSource, nil)
}

// Interface guards
var (
	_ caddy.Provisioner      = (*VastAuthRedact)(nil)
	_ logging.LogFieldFilter = (*VastAuthRedact)(nil)
	_ caddyfile.Unmarshaler  = (*VastAuthRedact)(nil)
)
