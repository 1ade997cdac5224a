package portalcmd

import (
	"bufio"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/redact"
)

func init() { Register(redactCommand) }

func redactCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "redact",
		Short: "Copy stdin to stdout with URL credentials hidden",
		Long: `Copies standard input to standard output line by line through
redact.URLs: a URL's user information and query string are hidden
(https://…@host/path?…), in their plain, scheme-relative, bare
user:password@host and percent-encoded forms, and bidirectional controls
are dropped. The boot scripts pass every line they log about provisioning
through it, so that a PROVISIONING_SCRIPT URL's credentials reach no log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return redactLines(cmd.OutOrStdout(), cmd.InOrStdin())
		},
	}
}

// redactLines copies r to w, one line at a time through redact.URLs.
func redactLines(w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bw := bufio.NewWriter(w)
	for sc.Scan() {
		if _, err := fmt.Fprintln(bw, redact.URLs(sc.Text())); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return bw.Flush()
}
