package gpumetrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Target is what Prometheus needs to scrape one instance's /metrics from
// outside it: the public address of the portal's external port, and the
// labels that tell instances apart on a fleet dashboard.
type Target struct {
	// PublicIP is PUBLIC_IPADDR; PublicPort is VAST_TCP_PORT_<p> of the
	// portal's external port p.
	PublicIP   string
	PublicPort int
	// HTTPS is true when the portal serves TLS (ENABLE_HTTPS).
	HTTPS bool
	// InstanceID is CONTAINER_ID (or VAST_CONTAINERLABEL without "C.").
	InstanceID string
	// Label is VAST_CONTAINERLABEL, exported as container_label (a target
	// label named "label" would displace the disks' own label label).
	Label string
	// GPUModel is the first GPU's name, "" without a GPU.
	GPUModel string
	// Host is the instance's host name.
	Host string
}

// FileSDEntry is one element of a Prometheus file_sd file.
type FileSDEntry struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// FileSD returns t as a file_sd document (a JSON array of one entry), ready
// to drop into a directory that file_sd_configs watches. Labels that are
// empty are left out; __scheme__ and __metrics_path__ tell Prometheus how
// to scrape.
func FileSD(t Target) ([]byte, error) {
	if t.PublicIP == "" {
		return nil, errors.New("PUBLIC_IPADDR is not set: the instance's public address is unknown")
	}
	if net.ParseIP(t.PublicIP) == nil && strings.ContainsAny(t.PublicIP, "/:@ ") {
		return nil, fmt.Errorf("PUBLIC_IPADDR=%q: not an IP address or host name", t.PublicIP)
	}
	if t.PublicPort <= 0 || t.PublicPort > 65535 {
		return nil, fmt.Errorf("public port %d: want 1-65535", t.PublicPort)
	}
	scheme := "http"
	if t.HTTPS {
		scheme = "https"
	}
	labels := map[string]string{"__scheme__": scheme, "__metrics_path__": "/metrics"}
	for k, v := range map[string]string{"instance_id": t.InstanceID, "container_label": t.Label, "gpu_model": t.GPUModel, "host": t.Host} {
		if v != "" {
			labels[k] = v
		}
	}
	e := []FileSDEntry{{Targets: []string{net.JoinHostPort(t.PublicIP, strconv.Itoa(t.PublicPort))}, Labels: labels}}
	b, err := json.MarshalIndent(e, "", "  ")
	return append(b, '\n'), err
}
