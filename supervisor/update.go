package supervisor

import (
	"context"
	"errors"
	"fmt"
)

// Changes is what a reread found: program groups added to, changed in and
// removed from supervisord's configuration files.
type Changes struct {
	Added, Changed, Removed []string
}

// Update is `supervisorctl reread` + `update` over XML-RPC: supervisord
// rereads its configuration, then removed groups are stopped and dropped,
// changed ones stopped, dropped and added again, and new ones added (and
// so started when autostart). It waits for nothing beyond ctx.
func (s *Service) Update(ctx context.Context) (Changes, error) {
	var ch Changes
	v, err := s.client.Call(ctx, "supervisor.reloadConfig")
	if err != nil {
		return ch, err
	}
	outer, ok := v.([]any)
	if !ok || len(outer) != 1 {
		return ch, fmt.Errorf("supervisor.reloadConfig: want [[added, changed, removed]], got %s", typeName(v))
	}
	lists, ok := outer[0].([]any)
	if !ok || len(lists) != 3 {
		return ch, fmt.Errorf("supervisor.reloadConfig: want three lists, got %s", typeName(outer[0]))
	}
	for i, dst := range []*[]string{&ch.Added, &ch.Changed, &ch.Removed} {
		names, ok := lists[i].([]any)
		if !ok {
			return ch, fmt.Errorf("supervisor.reloadConfig: want a list of names, got %s", typeName(lists[i]))
		}
		for _, n := range names {
			if s, ok := n.(string); ok {
				*dst = append(*dst, s)
			}
		}
	}
	for _, g := range append(append([]string{}, ch.Removed...), ch.Changed...) {
		// A group that is already stopped answers a fault; removing it
		// is what matters.
		_, _ = s.client.Call(ctx, "supervisor.stopProcessGroup", g, true)
		if _, err := s.client.Call(ctx, "supervisor.removeProcessGroup", g); err != nil {
			return ch, fmt.Errorf("removing %q: %w", g, err)
		}
	}
	for _, g := range append(append([]string{}, ch.Changed...), ch.Added...) {
		if _, err := s.client.Call(ctx, "supervisor.addProcessGroup", g); err != nil {
			return ch, fmt.Errorf("adding %q: %w", g, err)
		}
	}
	return ch, nil
}

// Known says whether supervisord has loaded a program of this name.
func (s *Service) Known(ctx context.Context, name string) (bool, error) {
	_, err := s.client.GetProcessInfo(ctx, name)
	if err == nil {
		return true, nil
	}
	var f *Fault
	if errors.As(err, &f) && f.Code == FaultBadName {
		return false, nil
	}
	return false, err
}

// Ready says whether supervisord answers on its socket.
func (s *Service) Ready(ctx context.Context) error {
	_, err := s.client.Call(ctx, "supervisor.getState")
	return err
}
