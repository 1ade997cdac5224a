package portalcmd

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/logtee"
)

func init() { Register(logTeeCommand) }

func logTeeCommand() *cobra.Command {
	var opts logtee.Options
	cmd := &cobra.Command{
		Use:   "log-tee [--plain PATH] [--max-bytes N] [--keep-bytes N] /var/log/portal/NAME.log",
		Short: "Copy stdin to the portal log, a plain log and stdout",
		Long: `Reads a program's output on stdin and writes it to three places:

  PORTAL LOG   as is (colours and '\r' progress bars kept) for the live log view
  PLAIN LOG    ANSI stripped, '\r' turned into a line break (default: the same
               name one directory up, /var/log/NAME.log)
  stdout       the plain text, for supervisord's own capture

Past --max-bytes (5 MB) each log keeps its last --keep-bytes (1 MB), cut at a
line boundary. A log that cannot be written is reported once on stderr and
skipped; the program's output keeps flowing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.PortalPath = args[0]
			opts.Stdout = os.Stdout
			opts.Stderr = cmd.ErrOrStderr()
			return logtee.Run(os.Stdin, opts)
		},
	}
	cmd.Flags().StringVar(&opts.PlainPath, "plain", "", "plain log path (default: PORTAL_LOG's name one directory up)")
	cmd.Flags().Int64Var(&opts.MaxBytes, "max-bytes", logtee.DefaultMaxBytes, "size past which a log is trimmed")
	cmd.Flags().Int64Var(&opts.KeepBytes, "keep-bytes", logtee.DefaultKeepBytes, "bytes a trimmed log keeps")
	return cmd
}
