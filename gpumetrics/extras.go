package gpumetrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Extras are the portal's own states served with /metrics beside the
// sample: what a fleet dashboard shows next to the GPUs. Each part is
// optional.
type Extras struct {
	// Apps maps an app's name to its state (appstate: running, starting, …).
	Apps map[string]string
	// Tunnels are the Cloudflare tunnels.
	Tunnels []TunnelState
	// Idle is idle auto-stop's view; nil when it is off.
	Idle *IdleState
}

// TunnelState is one tunnel as /metrics reports it.
type TunnelState struct {
	Type, Target, State string
}

// IdleState is idle auto-stop as /metrics reports it.
type IdleState struct {
	IdleSeconds, StopAfterSeconds float64
}

var (
	descAppState    = prometheus.NewDesc("portal_app_state", "1 for each app's current state (running, starting, stopped, failed, …).", []string{"app", "state"}, nil)
	descTunnelState = prometheus.NewDesc("portal_tunnel_state", "1 for each Cloudflare tunnel's current state.", []string{"type", "target", "state"}, nil)
	descIdle        = prometheus.NewDesc("portal_idle_seconds", "How long the instance has been idle (idle auto-stop; 0 while busy).", nil, nil)
	descIdleAfter   = prometheus.NewDesc("portal_idle_stop_after_seconds", "The idle window after which the stop command runs.", nil, nil)
)

type extrasCollector struct{ e *Extras }

func (extrasCollector) Describe(chan<- *prometheus.Desc) {}

func (c extrasCollector) Collect(ch chan<- prometheus.Metric) {
	for app, state := range c.e.Apps {
		ch <- prometheus.MustNewConstMetric(descAppState, prometheus.GaugeValue, 1, app, state)
	}
	for _, t := range c.e.Tunnels {
		ch <- prometheus.MustNewConstMetric(descTunnelState, prometheus.GaugeValue, 1, t.Type, t.Target, t.State)
	}
	if c.e.Idle != nil {
		ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, c.e.Idle.IdleSeconds)
		ch <- prometheus.MustNewConstMetric(descIdleAfter, prometheus.GaugeValue, c.e.Idle.StopAfterSeconds)
	}
}

// RenderExtras encodes e in the Prometheus text format, to be served after
// the sample's own families (none of the names overlap).
func RenderExtras(e *Extras) []byte { return render(extrasCollector{e}) }
