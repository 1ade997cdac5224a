package portalcmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/instancecert"
	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(certCommand) }

func certCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert ensure",
		Short: "Make sure the instance TLS pair is usable (sign or self-sign it)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "ensure",
		Short: "Keep a usable instance pair, or make a new one",
		Long: `Checks INSTANCE_CERT and INSTANCE_KEY (/etc/instance.crt, /etc/instance.key):
both must parse, the key must match, and the certificate must be valid now
and not a CA. A usable pair is kept. Otherwise a new key is made and its CSR
POSTed once (up to 3 tries, 2 s then 4 s apart) to INSTANCE_CERT_SIGNER_URL,
by default the console's sign_cert API for this instance (CONTAINER_ID, or
VAST_CONTAINERLABEL without "C."); "off", or no instance id, skips it. The
answer is accepted only if it certifies that key. Failing that, the pair is
self-signed for localhost, 127.0.0.1 and PUBLIC_IPADDR, and the next two
boots ask the signer again (three in all); the count lives in
PORTAL_STATE_DIR.

The key is written 0600 and both files are replaced by rename. Prints one
line saying what it did; exits non-zero only when the files cannot be
written.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := runCertEnsure(cmd.Context(), cmd.OutOrStdout(), portalconfig.OSEnviron())
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
			}
			return err
		},
	})
	return cmd
}

// certConfigFromEnv reads the certificate settings; a PUBLIC_IPADDR that
// cannot go into a certificate is left out and named in the returned note.
func certConfigFromEnv(env portalconfig.Environ) (cfg instancecert.Config, note string) {
	get := func(k string) string { return env.Get(k, "") }
	cfg = instancecert.Config{
		CertFile:  get("INSTANCE_CERT"),
		KeyFile:   get("INSTANCE_KEY"),
		SignerURL: get("INSTANCE_CERT_SIGNER_URL"),
		StateDir:  get("PORTAL_STATE_DIR"),
	}
	if cfg.StateDir == "" {
		cfg.StateDir = portalconfig.DefaultStateDir
	}
	cfg.InstanceID = get("CONTAINER_ID")
	if cfg.InstanceID == "" {
		cfg.InstanceID = strings.TrimPrefix(get("VAST_CONTAINERLABEL"), "C.")
	}
	cfg.Hosts = instancecert.Default().Hosts
	if ip := get("PUBLIC_IPADDR"); ip != "" {
		probe := instancecert.Config{Hosts: []string{ip}}
		probe.FillDefaults()
		if probe.Validate() == nil {
			cfg.Hosts = append(cfg.Hosts, ip)
		} else {
			note = fmt.Sprintf("PUBLIC_IPADDR=%q is not a host name or address; the certificate leaves it out", ip)
		}
	}
	return cfg, note
}

func runCertEnsure(ctx context.Context, out io.Writer, env portalconfig.Environ) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, note := certConfigFromEnv(env)
	if note != "" {
		fmt.Fprintln(out, note)
	}
	// One signing attempt with its retries fits well inside this.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	e := &instancecert.Ensurer{Config: cfg, Log: func(s string) { fmt.Fprintln(out, s) }}
	res, err := e.Ensure(ctx)
	if err != nil {
		return fmt.Errorf("instance certificate: %w", err)
	}
	until := res.NotAfter.UTC().Format("2006-01-02")
	switch res.Action {
	case instancecert.Kept:
		fmt.Fprintf(out, "instance certificate %s: usable, kept (valid until %s)\n", e.CertFile, until)
	case instancecert.Signed:
		fmt.Fprintf(out, "instance certificate %s: signed by the signer (valid until %s)\n", e.CertFile, until)
	case instancecert.SelfSigned:
		fmt.Fprintf(out, "instance certificate %s: self-signed for %s (valid until %s); browsers will warn\n", e.CertFile, strings.Join(e.Hosts, ", "), until)
	case instancecert.KeptRetry:
		fmt.Fprintf(out, "instance certificate %s: still self-signed, kept (valid until %s)\n", e.CertFile, until)
	}
	return nil
}
