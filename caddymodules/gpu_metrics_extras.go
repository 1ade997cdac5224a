package caddymodules

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/tunnels"
)

// latestAppStates is the app-state tracker of the newest config, which
// /metrics reads (portal_app_state).
var latestAppStates atomic.Pointer[appstate.Tracker]

// extrasTimeout bounds the supervisord call behind the app states.
const extrasTimeout = 2 * time.Second

// metricsExtras gathers the portal's own states for /metrics: apps,
// tunnels and idle auto-stop. Each part is left out when its source is
// missing; a supervisord error still reports the probed states.
func metricsExtras(ctx context.Context) *gpumetrics.Extras {
	e := &gpumetrics.Extras{}
	if tr := latestAppStates.Load(); tr != nil {
		ctx, cancel := context.WithTimeout(ctx, extrasTimeout)
		states, _ := tr.States(ctx)
		cancel()
		e.Apps = make(map[string]string, len(states))
		for _, s := range states {
			name := s.Name
			if name == "" {
				name = s.Key
			}
			e.Apps[name] = s.State
		}
	}
	tunnelManagers.each(func(m *tunnels.Manager) bool {
		for _, t := range m.List() {
			e.Tunnels = append(e.Tunnels, gpumetrics.TunnelState{Type: string(t.Type), Target: t.Target, State: string(t.State)})
		}
		return true
	})
	if a := runningIdle.Load(); a != nil && a.cfg.Enabled() {
		st := a.status()
		e.Idle = &gpumetrics.IdleState{IdleSeconds: st.IdleSeconds, StopAfterSeconds: st.StopAfterSeconds}
	}
	return e
}
