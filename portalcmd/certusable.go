package portalcmd

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/instancecert"
)

func init() { Register(certUsableCommand) }

func certUsableCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cert-usable [CRT] [KEY]",
		Short: "Exit 0 if the TLS pair is usable, 3 if matched but expired, 1 otherwise",
		Long: `Judges a certificate and private key together (default /etc/instance.crt
and /etc/instance.key, the instance pair), with the reference's exit codes:

  0  usable: both parse, the key matches, the certificate is valid now
  3  parsed and matched, but expired (the portal may still serve it)
  1  anything else: missing, unparseable, mismatched, a CA, not yet valid

The reason goes to stderr whenever the exit is not 0. Any key type Go
reads (RSA, EC, Ed25519) is compared by its public key.
/opt/instance-tools/bin/cert-usable runs this.`,
		Args:          cobra.MaximumNArgs(2),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			crt, key := "/etc/instance.crt", "/etc/instance.key"
			if len(args) > 0 {
				crt = args[0]
			}
			if len(args) > 1 {
				key = args[1]
			}
			now := time.Now()
			v := instancecert.Check(crt, key, now)
			code := v.ExitCode(now)
			if code != instancecert.ExitUsable {
				fmt.Fprintln(cmd.ErrOrStderr(), "cert-usable:", v.Reason)
				os.Exit(code)
			}
			return nil
		},
	}
}
