package caddymodules

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
)

// corsRules is CADDY_CORS_ALLOWED_ORIGINS rendered as Caddy routes. With no
// origins configured there is no rule at all (corsPolicy returns nil): CORS
// headers are then entirely the app's business.
type corsRules struct {
	origins []string
	// any: the list contains "*". Then Access-Control-Allow-Origin is "*"
	// without credentials, as the Fetch standard requires.
	any bool
}

func corsPolicy(origins []string) *corsRules {
	if len(origins) == 0 {
		return nil
	}
	c := &corsRules{}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		}
		c.origins = append(c.origins, o)
	}
	return c
}

// matchOrigin matches requests whose Origin is allowed.
func (c *corsRules) matchOrigin() caddyhttp.MatchHeader {
	if c.any {
		return caddyhttp.MatchHeader{"Origin": {"*"}}
	}
	return caddyhttp.MatchHeader{"Origin": c.origins}
}

func (c *corsRules) allowHeaders() http.Header {
	h := http.Header{}
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", "{http.request.header.Origin}")
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return h
}

// preflightRoute answers an allowed origin's preflight with 204.
func (c *corsRules) preflightRoute(warns *[]caddyconfig.Warning) caddyhttp.Route {
	h := c.allowHeaders()
	h.Set("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "{http.request.header.Access-Control-Request-Headers}")
	h.Set("Access-Control-Max-Age", "600")
	matcher := c.matchOrigin()
	matcher["Access-Control-Request-Method"] = []string{}
	return caddyhttp.Route{
		MatcherSetsRaw: caddyhttp.RawMatcherSets{{
			"method": caddyconfig.JSON(caddyhttp.MatchMethod{"OPTIONS"}, warns),
			"header": caddyconfig.JSON(matcher, warns),
		}},
		HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
			StatusCode: caddyhttp.WeakString("204"), Headers: h,
		}, "handler", "static_response", warns)},
		Terminal: true,
	}
}

// responseRoute adds the CORS headers to responses for allowed origins,
// unless the app set its own Access-Control-Allow-Origin.
func (c *corsRules) responseRoute(warns *[]caddyconfig.Warning) caddyhttp.Route {
	return caddyhttp.Route{
		MatcherSetsRaw: caddyhttp.RawMatcherSets{{"header": caddyconfig.JSON(c.matchOrigin(), warns)}},
		HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(headers.Handler{
			Response: &headers.RespHeaderOps{
				HeaderOps: &headers.HeaderOps{Set: c.allowHeaders(), Add: http.Header{"Vary": {"Origin"}}},
				Require:   &caddyhttp.ResponseMatcher{Headers: http.Header{"Access-Control-Allow-Origin": nil}},
				Deferred:  true,
			},
		}, "handler", "headers", warns)},
	}
}
