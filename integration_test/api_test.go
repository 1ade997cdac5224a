package integration_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// apiClient calls one port of the running portal the way a script or the
// dashboard does, so that each test states only what it asks and what it
// expects.
type apiClient struct {
	t testing.TB
	// base is put before each path: http://127.0.0.1:<port>, or more of
	// the URL for a client of one API (…/api/tunnels). With browser it is
	// the Origin too, so there it is the port's root.
	base string
	// token is sent as "Authorization: Bearer <token>" when not empty.
	token string
	// browser: a POST carries what the dashboard's fetch carries
	// (Content-Type application/json, Origin base, Sec-Fetch-Site
	// same-origin). Without it a POST is a script's, as curl sends it: no
	// Origin, no Sec-Fetch-Site, no Content-Type unless a header says so.
	browser bool
	// client sends the requests (nil: one with a 60 s timeout).
	client *http.Client
}

// noRedirect follows no redirect: each answer as the server sent it (tests
// see the 3xx).
var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// apiReply is one answer, its body read.
type apiReply struct {
	Code   int
	Header http.Header
	Body   string
}

// do sends one request. Each header in hdr is set after the defaults; one
// with the value "" removes the default (an older browser's request, without
// Sec-Fetch-Site); "Host" is the request's Host.
func (c *apiClient) do(method, path, body string, hdr map[string]string) apiReply {
	c.t.Helper()
	r, err := c.send(method, path, body, hdr)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is do without the test: the error instead of a failure (for a
// port that may not answer yet).
func (c *apiClient) send(method, path, body string, hdr map[string]string) (apiReply, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return apiReply{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.browser && method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	client := c.client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return apiReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return apiReply{resp.StatusCode, resp.Header, string(b)}, err
}

// call is do's status and body.
func (c *apiClient) call(method, path, body string, hdr map[string]string) (int, string) {
	c.t.Helper()
	r := c.do(method, path, body, hdr)
	return r.Code, r.Body
}

// getJSON GETs path, fails the test unless the answer is 200 with JSON
// that decodes into v, and returns the body.
func (c *apiClient) getJSON(path string, v any) string {
	c.t.Helper()
	code, body := c.call(http.MethodGet, path, "", nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		c.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return body
}
