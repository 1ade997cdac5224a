package portalcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/cudacompat"
)

func init() { Register(cudaCompatCommand) }

// cudaProbe is cuInit through the compat libcuda, in a child (a refusal
// must not touch this process), with the image's python3 as the
// reference's step does; python3 missing reads as a refusal.
const cudaProbe = `import ctypes, sys; sys.exit(0 if ctypes.CDLL("libcuda.so.1").cuInit(0) == 0 else 1)`

func cudaCompatCommand() *cobra.Command {
	var root, versionFile string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "cuda-compat [--root /] [--driver-version-file /proc/driver/nvidia/version]",
		Short: "Point the loader at CUDA's forward-compatibility libraries when the driver is older",
		Long: `Reads the NVIDIA driver's version from the kernel module
(/proc/driver/nvidia/version) and the newest CUDA it runs natively (NVIDIA's
minimum-driver table). When the image's newest /usr/local/cuda-X.Y is newer,
ships compat/libcuda.so.*, and cuInit succeeds with it (datacenter GPUs; a
consumer GPU refuses), /etc/ld.so.conf.d/0-compat-cuda.conf names that
directory and ldconfig runs; otherwise a conf left by an earlier boot is
removed. DISABLE_FORWARD_COMPAT=true (the --no-forward-compat boot flag)
turns it off. Without an NVIDIA driver it does nothing.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			text, err := os.ReadFile(versionFile)
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintln(out, "[cuda] no NVIDIA driver ("+versionFile+" is absent): nothing to configure")
				return nil
			} else if err != nil {
				return fmt.Errorf("driver version %s: %w", versionFile, err)
			}
			drv, err := cudacompat.ParseDriverVersion(string(text))
			if err != nil {
				fmt.Fprintf(out, "[cuda] %s: %v; CUDA configuration left as it is\n", versionFile, err)
				return nil
			}
			maxCUDA, ok := cudacompat.MaxCUDA(drv)
			if !ok {
				fmt.Fprintf(out, "[cuda] driver %s predates CUDA 11; CUDA configuration left as it is\n", drv)
				return nil
			}
			probe := func(dir string) error {
				c := exec.Command("python3", "-c", cudaProbe)
				c.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir)
				if b, err := c.CombinedOutput(); err != nil {
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					return fmt.Errorf("%v: %s", err, lines[len(lines)-1])
				}
				return nil
			}
			d := cudacompat.Decide(maxCUDA, cudacompat.Toolkits(root), os.Getenv(cudacompat.DisableEnv) == "true", probe)
			fmt.Fprintf(out, "[cuda] driver %s (CUDA %s): %s\n", drv, maxCUDA, d.Reason)
			if dryRun {
				return nil
			}
			changed, err := cudacompat.Apply(root, d)
			if err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(root, cudacompat.ConfFile), err)
			}
			if changed && root == "/" {
				if b, err := exec.Command("ldconfig").CombinedOutput(); err != nil {
					fmt.Fprintf(out, "[cuda] ldconfig: %v %s\n", err, b)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "the root holding usr/local/cuda-* and etc/ld.so.conf.d")
	cmd.Flags().StringVar(&versionFile, "driver-version-file", cudacompat.DriverVersionFile, "the kernel module's version file")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the decision only")
	return cmd
}
