// Package capabilities builds the instance's capability manifest: the one
// JSON document an AI agent reads to learn what this instance is (tools,
// Python environments, GPU), what runs on it (services with their states
// and URLs, OpenAI-compatible endpoints), how to reach it (auth model,
// open ports) and how to ask it for more (provisioning). Its keys and shape
// are the reference image's (portal-aio/capabilities/manifest.py), so an
// agent written for that image reads ours unchanged; what we add is in
// extra keys only (tunnel_url, portal_state, models, warnings, mcp_url,
// provisioning.progress_url).
//
// The manifest is assembled from small sources (Sources): the portal's apps
// with their live states (appstate, which matches supervisord's programs
// as /api/apps does), a metrics snapshot (gpumetrics), the tunnels, the
// provisioning progress (provstatus) and markers (bootstatus), and the
// fragment files of /etc/vast_capabilities.d. It never imports Caddy:
// caddymodules serves it, portalcmd prints it.
package capabilities

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/tunnels"
)

// Paths and values the manifest shares with the reference image. Each is
// declared here once.
const (
	// SchemaVersion is the manifest's schema_version.
	SchemaVersion = 1
	// DefaultFragmentsDir holds the fragments merged into the manifest
	// (CAPABILITIES_FRAGMENTS_DIR overrides it).
	DefaultFragmentsDir = "/etc/vast_capabilities.d"
	// FragmentsDirEnv names the variable that overrides DefaultFragmentsDir.
	FragmentsDirEnv = "CAPABILITIES_FRAGMENTS_DIR"
	// DefaultAgentsDir holds the agent guides: base.md, then one per
	// derivative image (AGENTS_DIR overrides it).
	DefaultAgentsDir = "/etc/vast_agents"
	// AgentsDirEnv names the variable that overrides DefaultAgentsDir.
	AgentsDirEnv = "AGENTS_DIR"
	// BaseGuide is the base image's guide, inside the agents directory.
	BaseGuide = "base.md"
	// DefaultCombinedGuide is every guide concatenated, written at boot;
	// AGENTS.md and CLAUDE.md link to it (AGENTS_GUIDE overrides it).
	DefaultCombinedGuide = "/etc/vast-agents-guide.md"
	// CombinedGuideEnv names the variable that overrides DefaultCombinedGuide.
	CombinedGuideEnv = "AGENTS_GUIDE"
	// DefaultSnapshotFile is the static manifest written at boot
	// (CAPABILITIES_SNAPSHOT overrides it).
	DefaultSnapshotFile = "/etc/vast_capabilities.json"
	// SnapshotFileEnv names the variable that overrides DefaultSnapshotFile.
	SnapshotFileEnv = "CAPABILITIES_SNAPSHOT"
	// ProvisioningLog is where provisioning writes its output.
	ProvisioningLog = "/var/log/portal/provisioning.log"
	// DefaultImageRepo is image.repo when no fragment names one.
	DefaultImageRepo = "https://github.com/instanceportal/portal"
	// DefaultLaunchFile names Jupyter when the platform runs it (LAUNCH_FILE).
	DefaultLaunchFile = "/.launch"
)

// The portal's paths that the manifest's discovery block names.
const (
	CapabilitiesPath = "/capabilities"
	ServicesPath     = "/capabilities/services"
	EndpointsPath    = "/capabilities/endpoints"
	ProvisionPath    = "/capabilities/provision"
	WellKnownPath    = "/.well-known/vast-capabilities"
	OpenAPIPath      = "/openapi.json"
	MCPPath          = "/mcp"
	// ProgressPath is where a provisioning run's progress is served.
	ProgressPath = "/api/provisioning"
)

// tokenEnv is the variables whose value the portal accepts as its token,
// in the reference's order.
var tokenEnv = []string{"OPEN_BUTTON_TOKEN", "WEB_PASSWORD"}

// provisioningEnv is the provisioner's variables, listed for agents.
var provisioningEnv = []string{
	"PROVISIONING_MANIFEST", "PROVISIONING_SCRIPT", "PROVISIONING_APT", "PROVISIONING_PIP",
	"PROVISIONING_CONDA", "PROVISIONING_GIT_REPOS", "PROVISIONING_DOWNLOADS", "PROVISIONING_POST_COMMANDS",
}

// Manifest is the whole document, in the reference's key order.
type Manifest struct {
	SchemaVersion      int              `json:"schema_version"`
	GeneratedAt        string           `json:"generated_at"`
	Image              map[string]any   `json:"image"`
	Credentials        Credentials      `json:"credentials"`
	Instance           Instance         `json:"instance"`
	Hardware           Hardware         `json:"hardware"`
	PythonEnvironments []map[string]any `json:"python_environments"`
	Tools              []any            `json:"tools"`
	Services           []Service        `json:"services"`
	EndpointsOpenAI    []OpenAIEndpoint `json:"endpoints_openai"`
	Provisioning       Provisioning     `json:"provisioning"`
	Auth               Auth             `json:"auth"`
	Discovery          Discovery        `json:"discovery"`
	// Warnings (ours) says what could not be read: a broken fragment file,
	// supervisord not answering. Absent when all went well.
	Warnings []string `json:"warnings,omitempty"`
}

// Credentials says which credentials are configured; never their values.
type Credentials struct {
	HuggingFace      bool   `json:"huggingface"`
	Civitai          bool   `json:"civitai"`
	RcloneConfigured bool   `json:"rclone_configured"`
	Note             string `json:"note"`
}

// Instance is the instance's identity and network facts.
type Instance struct {
	ContainerID    string `json:"container_id"`
	ContainerLabel string `json:"containerlabel"`
	Workspace      string `json:"workspace"`
	// WorkspaceIsVolume is true only when $WORKSPACE is a mount of its own
	// (a volume that outlives the container).
	WorkspaceIsVolume bool       `json:"workspace_is_volume"`
	Scheme            string     `json:"scheme"`
	PublicIP          string     `json:"public_ip"`
	OpenPorts         []OpenPort `json:"open_ports"`
}

// OpenPort is one VAST_TCP_PORT_<p> / VAST_UDP_PORT_<p> mapping.
type OpenPort struct {
	Proto         string `json:"proto"`
	ContainerPort int    `json:"container_port"`
	PublicPort    string `json:"public_port"`
	// Self-mapped ports (container port above 65535) are bound inside the
	// container on the public port itself.
	SelfMapped bool   `json:"self_mapped,omitempty"`
	BindPort   int    `json:"bind_port,omitempty"`
	Note       string `json:"note,omitempty"`
	InUse      bool   `json:"in_use"`
	Service    string `json:"service,omitempty"`
}

// Hardware is the GPU summary and, with include=metrics, live figures in
// the reference's /system-metrics shape.
type Hardware struct {
	GPU    map[string]any `json:"gpu"`
	CPU    *CPUMetrics    `json:"cpu,omitempty"`
	RAM    *UsageMetrics  `json:"ram,omitempty"`
	Disk   *UsageMetrics  `json:"disk,omitempty"`
	Volume *UsageMetrics  `json:"volume,omitempty"`
}

// Service is one app of the portal's configuration.
type Service struct {
	Name         string `json:"name"`
	Hostname     string `json:"hostname"`
	InternalPort int    `json:"internal_port"`
	ExternalPort int    `json:"external_port"`
	OpenPath     string `json:"open_path"`
	// MappedPort is VAST_TCP_PORT_<external_port> ("" when unset).
	MappedPort  string  `json:"mapped_port"`
	InternalURL string  `json:"internal_url"`
	DirectURL   *string `json:"direct_url"`
	// SupervisorProcess is the program serving the app, matched as
	// /api/apps matches it; State is its supervisord state (RUNNING,
	// STOPPED…), "unknown" without one, "vast-managed" for Jupyter run by
	// the platform (/.launch).
	SupervisorProcess *string `json:"supervisor_process"`
	State             string  `json:"state"`
	// OpenAIV1Base and Capabilities are set for an OpenAI-compatible
	// service (declared by a fragment or found by the probe); the base is
	// null when the service has no direct URL.
	OpenAIV1Base any      `json:"openai_v1_base,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	// PortalState (ours) is the app's state as /api/apps reports it
	// (appstate: running, starting, stopped, failed, external, not_answering).
	PortalState string `json:"portal_state,omitempty"`
	// TunnelURL (ours) is a running Cloudflare tunnel's URL to the app.
	TunnelURL *string `json:"tunnel_url"`
}

// OpenAIEndpoint is one OpenAI-compatible API on the instance.
type OpenAIEndpoint struct {
	Service         string       `json:"service"`
	BaseURL         *string      `json:"base_url"`
	InternalBaseURL string       `json:"internal_base_url"`
	Capabilities    []string     `json:"capabilities"`
	ModelsPath      *string      `json:"models_path"`
	Auth            EndpointAuth `json:"auth"`
	// Models (ours) lists the model ids /v1/models answered, when probed.
	Models []string `json:"models,omitempty"`
	// Source (ours): "fragment" (declared) or "probe" (found answering).
	Source string `json:"source,omitempty"`
}

// EndpointAuth says how to authenticate to an endpoint's base_url.
type EndpointAuth struct {
	// Type is "bearer", or "none" on a port the portal does not guard.
	Type     string   `json:"type"`
	TokenEnv []string `json:"token_env"`
}

// Provisioning says how far provisioning is and how to ask for more.
type Provisioning struct {
	// Status is none, in_progress, complete or failed.
	Status         string   `json:"status"`
	HowTo          string   `json:"how_to"`
	EnvConventions []string `json:"env_conventions"`
	LogFile        string   `json:"log_file"`
	// ProgressURL (ours) serves the live progress of a run.
	ProgressURL string `json:"progress_url"`
	// Run (ours) is the latest `caddy portal provision` run, if any.
	Run *ProvisioningRun `json:"run,omitempty"`
}

// ProvisioningRun is the summary of a provstatus document.
type ProvisioningRun struct {
	State       string     `json:"state"`
	Source      string     `json:"source,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	FailedPhase string     `json:"failed_phase,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// Auth is the portal's authentication model.
type Auth struct {
	Edge          string   `json:"edge"`
	Enabled       bool     `json:"enabled"`
	TokenEnv      []string `json:"token_env"`
	Methods       []string `json:"methods"`
	BearerHeader  string   `json:"bearer_header"`
	CookieName    *string  `json:"cookie_name"`
	QueryParam    string   `json:"query_param"`
	ExcludedPorts []string `json:"excluded_ports"`
	Note          string   `json:"note"`
}

// Discovery says where the manifest, the API description and the guides are.
type Discovery struct {
	CapabilitiesURL string      `json:"capabilities_url"`
	WellKnownURL    string      `json:"well_known_url"`
	OpenAPIURL      string      `json:"openapi_url"`
	SnapshotFile    string      `json:"snapshot_file"`
	AgentsGuide     AgentsGuide `json:"agents_guide"`
	// MCPURL (ours) is the portal's MCP endpoint (Streamable HTTP).
	MCPURL string `json:"mcp_url"`
}

// AgentsGuide lists the guide files.
type AgentsGuide struct {
	Combined    string   `json:"combined"`
	Dir         string   `json:"dir"`
	Files       []string `json:"files"`
	Instruction string   `json:"instruction"`
}

// AppSource gives the portal's apps with their live states, the way
// /api/apps reports them (*appstate.Tracker).
type AppSource interface {
	States(ctx context.Context) ([]appstate.State, error)
}

// MetricsSource gives the latest metrics sample (*gpumetrics.Collector).
type MetricsSource interface {
	Latest(ctx context.Context) *gpumetrics.Sample
}

// TunnelSource lists the tunnels (*tunnels.Manager).
type TunnelSource interface {
	List() []tunnels.Status
}

// Sources are where the live parts of the manifest come from. Apps is
// needed; a nil one of the others leaves its part out.
type Sources struct {
	Apps    AppSource
	Metrics MetricsSource
	Tunnels TunnelSource
	// OpenAI finds the OpenAI-compatible services; nil probes nothing.
	OpenAI *Prober
	// Packages reads package versions for include=packages; nil reads none.
	Packages *PackageProber
}

// Options are the facts and paths the manifest is built with. The zero
// value of each path means its default; Env is the environment snapshot
// (nil: the process environment).
type Options struct {
	// IncludeMetrics adds live metrics to hardware; IncludePackages adds
	// package_versions to each Python environment.
	IncludeMetrics  bool
	IncludePackages bool
	// Env is the environment the manifest describes.
	Env map[string]string
	// Scheme is the scheme of the portal's ports ("http" or "https"), as
	// the plan decided it; "" derives it from ENABLE_HTTPS.
	Scheme string
	// FragmentsDir, AgentsDir, CombinedGuide, SnapshotFile, LaunchFile:
	// see the constants. ProvisioningStateDir is provstatus's
	// (PROVISIONER_STATE_DIR); Markers are the entrypoint's.
	FragmentsDir         string
	AgentsDir            string
	CombinedGuide        string
	SnapshotFile         string
	LaunchFile           string
	ProvisioningStateDir string
	Markers              bootstatus.Config
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Host reads the facts of the machine (nil: the real ones).
	Host *Host
}

// ParseInclude reads ?include=metrics,packages; unknown words are ignored,
// as the reference does.
func ParseInclude(s string) (metrics, packages bool) {
	for w := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(w) {
		case "metrics":
			metrics = true
		case "packages":
			packages = true
		}
	}
	return metrics, packages
}

// envOf returns the environment to read.
func (o *Options) envOf() map[string]string {
	if o.Env != nil {
		return o.Env
	}
	return portalconfig.OSEnviron()
}

// withDefaults fills every zero path from its variable, then its default.
func (o Options) withDefaults() Options {
	env := o.envOf()
	o.Env = env
	pick := func(cur, envName, def string) string {
		if cur != "" {
			return cur
		}
		if v := env[envName]; v != "" {
			return v
		}
		return def
	}
	o.FragmentsDir = pick(o.FragmentsDir, FragmentsDirEnv, DefaultFragmentsDir)
	o.AgentsDir = pick(o.AgentsDir, AgentsDirEnv, DefaultAgentsDir)
	o.CombinedGuide = pick(o.CombinedGuide, CombinedGuideEnv, DefaultCombinedGuide)
	o.SnapshotFile = pick(o.SnapshotFile, SnapshotFileEnv, DefaultSnapshotFile)
	o.LaunchFile = pick(o.LaunchFile, "LAUNCH_FILE", DefaultLaunchFile)
	o.ProvisioningStateDir = pick(o.ProvisioningStateDir, provstatus.StateDirEnv, provstatus.DefaultStateDir)
	// The markers' variables are read once, by portalconfig (the plan's
	// settings); an empty one is the image's default.
	def := bootstatus.Default()
	o.Markers.LockFile = cmp.Or(o.Markers.LockFile, def.LockFile)
	o.Markers.DoneFile = cmp.Or(o.Markers.DoneFile, def.DoneFile)
	o.Markers.FailedFile = cmp.Or(o.Markers.FailedFile, def.FailedFile)
	if o.Scheme == "" {
		o.Scheme = "http"
		if strings.EqualFold(env["ENABLE_HTTPS"], "true") {
			o.Scheme = "https"
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Host == nil {
		o.Host = RealHost()
	}
	return o
}

// Build assembles the manifest. It always returns one: what cannot be read
// is left out and named in Warnings. The error is only for a missing app
// source or a cancelled context.
func Build(ctx context.Context, src Sources, opts Options) (Manifest, error) {
	if src.Apps == nil {
		return Manifest{}, fmt.Errorf("capabilities: no app source")
	}
	o := opts.withDefaults()
	env := o.Env
	var warns []string

	frags, fragWarns := LoadFragments(o.FragmentsDir)
	warns = append(warns, fragWarns...)

	states, err := src.Apps.States(ctx)
	if err != nil {
		warns = append(warns, "supervisord: "+err.Error()+" (service states from probes only)")
	}
	if ctx.Err() != nil {
		return Manifest{}, ctx.Err()
	}
	var tunnelList []tunnels.Status
	if src.Tunnels != nil {
		tunnelList = src.Tunnels.List()
	}

	m := Manifest{
		SchemaVersion: SchemaVersion,
		GeneratedAt:   o.Now().UTC().Format("2006-01-02T15:04:05Z"),
		Image:         frags.Image,
		Credentials:   credentials(env, o.Host),
		Tools:         frags.Tools,
	}
	if m.Image == nil {
		m.Image = map[string]any{}
	}
	if _, ok := m.Image["repo"]; !ok {
		m.Image["repo"] = DefaultImageRepo
	}
	if m.Tools == nil {
		m.Tools = []any{}
	}

	apps := configured(states)
	launchJupyter := o.Host.launchHasJupyter(o.LaunchFile)
	m.Services = services(apps, env, tunnelList, launchJupyter)
	m.EndpointsOpenAI = endpoints(ctx, m.Services, apps, frags.OpenAIEndpoints, src.OpenAI, o.Scheme, env["PUBLIC_IPADDR"])

	m.PythonEnvironments = pythonEnvironments(ctx, frags.PythonEnvironments, o.IncludePackages, src.Packages, o.Host)

	var sample *gpumetrics.Snapshot
	if src.Metrics != nil {
		if s := src.Metrics.Latest(ctx); s != nil {
			sample = s.Snapshot
		}
	}
	m.Hardware = hardware(sample, o.IncludeMetrics, env, o.Host)

	workspace := env["WORKSPACE"]
	if workspace == "" {
		workspace = "/workspace"
	}
	m.Instance = Instance{
		ContainerID:       env["CONTAINER_ID"],
		ContainerLabel:    env["VAST_CONTAINERLABEL"],
		Workspace:         workspace,
		WorkspaceIsVolume: o.Host.isVolume(workspace),
		Scheme:            o.Scheme,
		PublicIP:          env["PUBLIC_IPADDR"],
		OpenPorts:         openPorts(env, m.Services, o.Host.listening()),
	}
	m.Provisioning = provisioning(o)
	m.Auth = auth(env)
	m.Discovery = Discovery{
		CapabilitiesURL: CapabilitiesPath,
		WellKnownURL:    WellKnownPath,
		OpenAPIURL:      OpenAPIPath,
		SnapshotFile:    o.SnapshotFile,
		AgentsGuide:     agentsGuide(o.AgentsDir, o.CombinedGuide),
		MCPURL:          MCPPath,
	}
	m.Warnings = warns
	return m, nil
}

// configured drops the programs that /api/apps lists as not configured:
// they are not services.
func configured(states []appstate.State) []appstate.State {
	out := make([]appstate.State, 0, len(states))
	for _, s := range states {
		if s.State != appstate.NotConfigured {
			out = append(out, s)
		}
	}
	return out
}

// services turns the apps into the reference's service entries, one each.
func services(apps []appstate.State, env map[string]string, tl []tunnels.Status, launchJupyter bool) []Service {
	out := make([]Service, 0, len(apps))
	for _, s := range apps {
		a := s.AppInfo
		host := a.Hostname
		if host == "" {
			host = "localhost"
		}
		open := a.OpenPath
		if open == "" {
			open = "/"
		}
		svc := Service{
			Name: a.Name, Hostname: host, InternalPort: a.InternalPort, ExternalPort: a.ExternalPort,
			OpenPath: open, MappedPort: env["VAST_TCP_PORT_"+strconv.Itoa(a.ExternalPort)],
			InternalURL: "http://localhost:" + strconv.Itoa(a.InternalPort),
			State:       "unknown", PortalState: s.State,
		}
		if a.DirectURL != "" {
			svc.DirectURL = ptr(a.DirectURL)
		}
		if s.Program != "" {
			svc.SupervisorProcess = ptr(s.Program)
			svc.State = s.ProgramState
		} else if launchJupyter && strings.Contains(normalize(a.Name), "jupyter") {
			svc.State = "vast-managed"
		}
		if u := tunnelURL(tl, a.TunnelPort); u != "" {
			svc.TunnelURL = ptr(u)
		}
		out = append(out, svc)
	}
	return out
}

// tunnelURL is the URL of a running tunnel whose target is local port p.
func tunnelURL(tl []tunnels.Status, p int) string {
	if p <= 0 {
		return ""
	}
	for _, t := range tl {
		if t.URL == "" || t.State != tunnels.StateRunning {
			continue
		}
		u, err := url.Parse(t.Target)
		if err != nil {
			continue
		}
		if port, err := strconv.Atoi(u.Port()); err == nil && port == p {
			return t.URL
		}
	}
	return ""
}

// normalize lowercases s and keeps letters and digits only.
func normalize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }

// credentials says which credentials are set, by presence only.
func credentials(env map[string]string, h *Host) Credentials {
	present := func(names ...string) bool {
		for _, n := range names {
			if env[n] != "" {
				return true
			}
		}
		return false
	}
	return Credentials{
		HuggingFace:      present("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
		Civitai:          present("CIVITAI_TOKEN"),
		RcloneConfigured: present("RCLONE_CONFIG") || h.rcloneConfigured(),
		Note:             "presence only; token values are not exposed",
	}
}

// auth describes the portal's authentication.
func auth(env map[string]string) Auth {
	a := Auth{
		Edge:          "caddy",
		Enabled:       !strings.EqualFold(strings.TrimSpace(env["ENABLE_AUTH"]), "false"),
		TokenEnv:      slices.Clone(tokenEnv),
		Methods:       []string{"bearer", "cookie", "query"},
		BearerHeader:  "Authorization: Bearer <token>",
		QueryParam:    "token",
		ExcludedPorts: []string{},
		Note: "Requests from inside the container to an app's internal port do not pass the portal " +
			"and need no token; requests to an external port pass the portal and need one.",
	}
	if label := env["VAST_CONTAINERLABEL"]; label != "" {
		a.CookieName = ptr(label + "_auth_token")
	}
	for p := range strings.SplitSeq(env["AUTH_EXCLUDE"], ",") {
		if p = strings.TrimSpace(p); p != "" {
			a.ExcludedPorts = append(a.ExcludedPorts, p)
		}
	}
	return a
}

// provisioning reads the markers and the latest run's progress.
func provisioning(o Options) Provisioning {
	p := Provisioning{
		Status: "none",
		HowTo: "At boot: set PROVISIONING_MANIFEST=<url> or the PROVISIONING_* variables. " +
			"At run time: POST " + ProvisionPath + " or run `caddy portal provision <manifest.yaml>`; " +
			"follow it at " + ProgressPath + ".",
		EnvConventions: slices.Clone(provisioningEnv),
		LogFile:        ProvisioningLog,
		ProgressURL:    ProgressPath,
	}
	// The reference's order: a completed run wins over the lock that
	// every boot holds while it starts, then a failure, then the lock.
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	switch {
	case exists(o.Markers.DoneFile):
		p.Status = "complete"
	case exists(o.Markers.FailedFile):
		p.Status = "failed"
	case exists(o.Markers.LockFile):
		p.Status = "in_progress"
	}
	if st, err := provstatus.Read(provstatus.Path(o.ProvisioningStateDir)); err == nil {
		p.Run = &ProvisioningRun{
			State: st.State, Source: st.Source, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
			FailedPhase: st.FailedPhase, Error: st.Error,
		}
		if st.State == provstatus.Running {
			p.Status = "in_progress"
		}
	}
	return p
}

// openPorts lists the VAST_{TCP,UDP}_PORT_<p> mappings, sorted by protocol
// then port, each marked in use when a service has it or something listens.
func openPorts(env map[string]string, svcs []Service, listening map[int]bool) []OpenPort {
	out := []OpenPort{}
	for k, v := range env {
		var proto, rest string
		switch {
		case strings.HasPrefix(k, "VAST_TCP_PORT_"):
			proto, rest = "tcp", k[len("VAST_TCP_PORT_"):]
		case strings.HasPrefix(k, "VAST_UDP_PORT_"):
			proto, rest = "udp", k[len("VAST_UDP_PORT_"):]
		default:
			continue
		}
		cp, err := strconv.Atoi(rest)
		if err != nil || cp < 0 || !allDigits(rest) || !allDigits(v) {
			continue
		}
		p := OpenPort{Proto: proto, ContainerPort: cp, PublicPort: v}
		bind := cp
		if cp > 65535 {
			b, _ := strconv.Atoi(v)
			p.SelfMapped, p.BindPort, bind = true, b, b
			p.Note = "Self-mapped port: an app must listen on " + v + " inside the container, which is also " +
				"its public port. This is a plain TCP forward: the portal's authentication does not cover it."
		}
		for _, s := range svcs {
			if s.ExternalPort == cp {
				p.Service = s.Name
				break
			}
		}
		p.InUse = listening[bind] || p.Service != ""
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b OpenPort) int {
		if c := strings.Compare(a.Proto, b.Proto); c != 0 {
			return c
		}
		return a.ContainerPort - b.ContainerPort
	})
	return out
}

func allDigits(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
