package capabilities

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/portalconfig"
)

// ProberConfig bounds the probe of /v1/models. Zero fields take the
// defaults of DefaultProberConfig.
type ProberConfig struct {
	// Timeout bounds one request, connection included. Default: 1s
	Timeout time.Duration
	// Concurrency bounds the requests in flight at once. Default: 4
	Concurrency int
	// MaxBody bounds the bytes read of one answer. Default: 256 KiB
	MaxBody int64
	// CacheTTL is how long an answer (or its absence) is reused. Default: 30s
	CacheTTL time.Duration
	// MaxModels bounds the model ids kept per service. Default: 32
	MaxModels int
}

// DefaultProberConfig is the probe's configuration.
func DefaultProberConfig() ProberConfig {
	return ProberConfig{Timeout: time.Second, Concurrency: 4, MaxBody: 256 << 10, CacheTTL: 30 * time.Second, MaxModels: 32}
}

// ModelsPath is where an OpenAI-compatible server lists its models.
const ModelsPath = "/v1/models"

// Prober finds OpenAI-compatible servers: a service whose internal port
// answers GET /v1/models on 127.0.0.1 with 200 and a JSON object holding a
// "data" list. It sends no credential, follows no redirect, uses no proxy,
// and caches each port's answer. Safe for concurrent use: one probe round
// runs at a time, and callers that wait for it read its answers.
type Prober struct {
	cfg    ProberConfig
	client *http.Client
	now    func() time.Time
	// host is the address probed; tests keep 127.0.0.1.
	host string

	round sync.Mutex // one probe round at a time
	mu    sync.Mutex
	cache map[int]probeEntry
}

type probeEntry struct {
	at     time.Time
	ok     bool
	models []string
}

// NewProber returns a prober; zero fields of cfg take their defaults.
func NewProber(cfg ProberConfig) *Prober {
	def := DefaultProberConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = def.Concurrency
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = def.MaxBody
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = def.CacheTTL
	}
	if cfg.MaxModels <= 0 {
		cfg.MaxModels = def.MaxModels
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: cfg.Timeout, MaxResponseHeaderBytes: 16 << 10}
	return &Prober{
		cfg: cfg,
		client: &http.Client{
			Transport:     tr,
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:   time.Now,
		host:  "127.0.0.1",
		cache: map[int]probeEntry{},
	}
}

// Probe answers, for each port, whether an OpenAI-compatible server
// answers there and the model ids it lists. Ports probed less than
// CacheTTL ago are not probed again.
func (p *Prober) Probe(ctx context.Context, ports []int) map[int][]string {
	p.round.Lock()
	defer p.round.Unlock()
	now := p.now()
	var todo []int
	seen := map[int]bool{}
	p.mu.Lock()
	for _, port := range ports {
		if port <= 0 || port > 65535 || seen[port] {
			continue
		}
		seen[port] = true
		if e, ok := p.cache[port]; !ok || now.Sub(e.at) >= p.cfg.CacheTTL {
			todo = append(todo, port)
		}
	}
	p.mu.Unlock()

	var probes errgroup.Group
	probes.SetLimit(p.cfg.Concurrency)
	for _, port := range todo {
		probes.Go(func() error {
			models, ok := p.probeOne(ctx, port)
			if ctx.Err() != nil {
				return nil // a cancelled probe says nothing about the port
			}
			p.mu.Lock()
			p.cache[port] = probeEntry{at: now, ok: ok, models: models}
			p.mu.Unlock()
			return nil
		})
	}
	_ = probes.Wait()

	out := map[int][]string{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for port := range seen {
		if e, ok := p.cache[port]; ok && e.ok {
			out[port] = e.models
		}
	}
	return out
}

// probeOne asks one port.
func (p *Prober) probeOne(ctx context.Context, port int) ([]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.host+":"+strconv.Itoa(port)+ModelsPath, nil)
	if err != nil {
		return nil, false
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	return ParseModels(io.LimitReader(resp.Body, p.cfg.MaxBody), p.cfg.MaxModels)
}

// ParseModels reads an OpenAI /v1/models answer: a JSON object whose
// "data" is a list. It returns the ids of the first max entries (clipped to
// 200 bytes each) and whether the answer had that form.
func ParseModels(r io.Reader, max int) ([]string, bool) {
	var doc struct {
		Data []json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil || doc.Data == nil {
		return nil, false
	}
	models := []string{}
	for _, raw := range doc.Data {
		if len(models) >= max {
			break
		}
		var m struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &m) == nil && m.ID != "" {
			models = append(models, clip(m.ID, 200))
		}
	}
	return models, true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// endpoints is the endpoints_openai list: the services a fragment
// declares OpenAI-compatible (the reference's rule), then those the probe
// found. Each service concerned gets openai_v1_base and capabilities.
func endpoints(ctx context.Context, svcs []Service, apps []appstate.State, hints []map[string]any, prober *Prober, scheme, publicIP string) []OpenAIEndpoint {
	byName := map[string]map[string]any{}
	for _, h := range hints {
		if name := stringOr(h["service"], ""); name != "" {
			byName[name] = h
		}
	}
	var found map[int][]string
	if prober != nil {
		var ports []int
		for i, s := range svcs {
			if !isPortalApp(apps[i]) {
				ports = append(ports, s.InternalPort)
			}
		}
		found = prober.Probe(ctx, ports)
	}
	out := []OpenAIEndpoint{}
	for i := range svcs {
		s := &svcs[i]
		hint, hinted := byName[s.Name]
		models, probed := found[s.InternalPort]
		if isPortalApp(apps[i]) {
			probed = false
		}
		if !hinted && !probed {
			continue
		}
		basePath := ModelsPath[:len("/v1")]
		caps := []string{}
		var modelsPath *string
		source := "probe"
		if hinted {
			basePath = strings.TrimRight(stringOr(hint["path"], "/v1"), "/")
			caps = stringList(hint["capabilities"])
			if mp, ok := hint["models_path"].(string); ok {
				modelsPath = ptr(mp)
			}
			source = "fragment"
		} else {
			modelsPath = ptr(ModelsPath)
		}
		var base *string
		if s.DirectURL != nil {
			base = ptr(scheme + "://" + publicIP + ":" + s.MappedPort + basePath)
		}
		s.OpenAIV1Base = base
		s.Capabilities = caps
		authType := "bearer"
		if !apps[i].Auth {
			authType = "none"
		}
		out = append(out, OpenAIEndpoint{
			Service: s.Name, BaseURL: base,
			InternalBaseURL: "http://localhost:" + strconv.Itoa(s.InternalPort) + basePath,
			Capabilities:    caps, ModelsPath: modelsPath,
			Auth:   EndpointAuth{Type: authType, TokenEnv: append([]string(nil), tokenEnv...)},
			Models: models, Source: source,
		})
	}
	return out
}

// isPortalApp reports whether the app is the Instance Portal itself.
func isPortalApp(s appstate.State) bool {
	return portalconfig.App{Key: s.Key, Name: s.Name}.IsPortal()
}
