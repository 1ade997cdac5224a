//go:build !unix

package connlimit

// DescriptorLimit is unknown on this system: 0, and only the per-address
// limit applies.
func DescriptorLimit() uint64 { return 0 }
