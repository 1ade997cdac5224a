package portalcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/threadcaps"
)

func init() { Register(threadsCommand) }

func threadsCommand() *cobra.Command {
	var envFile, dotenv, cgroup string
	cmd := &cobra.Command{
		Use:   "threads --env-file /etc/environment [--dotenv /workspace/.env]",
		Short: "Cap runtime thread pools when pids.max is low for the visible CPUs",
		Long: `Reads the container's cgroup (pids.max, cpu.max, the cpuset; v2, else v1)
and, when pids.max is below 16 per visible CPU, caps OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMEXPR_NUM_THREADS and the other
pool sizes at the CPU quota (at least 2, at most VAST_CPU_THREAD_CEILING
[16]), in a managed block of the environment file. A value set outside the
block or in --dotenv is kept; on a healthy host an old block is removed.

Prints for the boot shell one line per change: "set NAME=VALUE" or
"unset NAME"; the reasons go to stderr.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			errw := cmd.ErrOrStderr()
			l := threadcaps.ReadLimits(cgroup, runtime.NumCPU())
			limit := threadcaps.Cap(l, threadcaps.Ceiling(os.Getenv(threadcaps.CeilingEnv)))
			env, err := os.ReadFile(envFile)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("environment file %s: %w", envFile, err)
			}
			dot, _ := os.ReadFile(dotenv)
			c := threadcaps.Apply(env, dot, limit)
			quota := "none"
			if l.QuotaCores > 0 {
				quota = fmt.Sprint(l.QuotaCores)
			}
			if limit > 0 {
				fmt.Fprintf(errw, "[cpu-thread-limits] low pids budget (pids.max=%d, visible CPUs=%d, quota=%s): capping thread pools to %d\n",
					l.PidsMax, l.Visible, quota, limit)
				if len(c.Kept) > 0 {
					fmt.Fprintf(errw, "[cpu-thread-limits] left at the user's value: %s\n", strings.Join(c.Kept, " "))
				}
			}
			if c.File != nil {
				if err := threadcaps.WriteFile(envFile, c.File); err != nil {
					fmt.Fprintf(errw, "error: environment file %s: %v\n", envFile, err)
					return err
				}
				if limit == 0 {
					fmt.Fprintf(errw, "[cpu-thread-limits] pids budget healthy now: removed the caps from %s\n", envFile)
				}
			}
			out := cmd.OutOrStdout()
			for _, s := range c.Set {
				fmt.Fprintln(out, "set", s)
			}
			for _, s := range c.Unset {
				fmt.Fprintln(out, "unset", s)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&envFile, "env-file", "/etc/environment", "the environment file holding the managed block")
	cmd.Flags().StringVar(&dotenv, "dotenv", "/workspace/.env", "the user's .env: a value set there is kept")
	cmd.Flags().StringVar(&cgroup, "cgroup", threadcaps.DefaultCgroupDir, "where the container's cgroup is mounted")
	return cmd
}
