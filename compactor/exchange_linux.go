//go:build linux

package compactor

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// exchangeDirs swaps two directories of a local file system in one step (renameat2 with
// RENAME_EXCHANGE): a reader resolving either path sees the old or the new one, never neither.
func exchangeDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, filepath.FromSlash(a), unix.AT_FDCWD, filepath.FromSlash(b), unix.RENAME_EXCHANGE)
}
