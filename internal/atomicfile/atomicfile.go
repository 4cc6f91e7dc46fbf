// Package atomicfile writes files so that a reader never sees a partial
// one: the data goes to a temporary file (mode 0600) in the same
// directory, is synced, and is renamed into place.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write stores data as dir/name atomically.
func Write(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	// Make the new directory entry durable; best effort, as some platforms
	// cannot sync directories and the file is complete either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
