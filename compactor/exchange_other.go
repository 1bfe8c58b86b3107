//go:build !linux

package compactor

import "errors"

// exchangeDirs would swap two directories atomically; only Linux has that (renameat2 with
// RENAME_EXCHANGE). Elsewhere, compact through a metastore.
func exchangeDirs(a, b string) error {
	return errors.New("swapping a partition directory needs Linux (renameat2 RENAME_EXCHANGE); configure a metastore")
}
