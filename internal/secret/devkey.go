package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DevKeyFile is the name of the development key file inside its directory.
const DevKeyFile = "encryption.key"

// LoadOrCreateDevKey returns the key list stored in dir/encryption.key,
// creating the directory (0700) and the file (0600) with a fresh key named
// "dev-<YYYYMMDD>" if the file does not exist yet. created reports whether
// this call wrote the file. It is meant for development setups that have no
// GATEHOUSE_ENCRYPTION_KEYS; production should set that variable.
//
// The file is written to a temporary file, synced, and then hard-linked to
// its final name. Linking fails if the name exists, so when several
// processes or goroutines race, exactly one wins and the others read the
// winner's complete file: all end up with the same key, and no reader ever
// sees a partly written file. (A rename would silently replace a file
// another caller had already returned.) The file system must support hard
// links.
//
// The contents are validated with ParseKeys; an invalid file is an error,
// never overwritten.
func LoadOrCreateDevKey(dir string) (keysString string, created bool, err error) {
	return loadOrCreateDevKey(dir, time.Now)
}

func loadOrCreateDevKey(dir string, now func() time.Time) (string, bool, error) {
	path := filepath.Join(dir, DevKeyFile)
	if s, err := readKeyFile(path); err == nil {
		return s, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("secret: create dev key directory: %w", err)
	}
	keys, err := GenerateKeyString("dev-" + now().UTC().Format("20060102"))
	if err != nil {
		return "", false, err
	}
	tmp, err := writeTemp(dir, keys+"\n")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp)

	switch err := os.Link(tmp, path); {
	case err == nil:
		syncDir(dir)
		return keys, true, nil
	case errors.Is(err, fs.ErrExist):
		// Another caller won the race; use its key.
		s, err := readKeyFile(path)
		if err != nil {
			return "", false, err
		}
		return s, false, nil
	default:
		return "", false, fmt.Errorf("secret: install dev key file: %w", err)
	}
}

// writeTemp writes data to a new 0600 file in dir, syncs and closes it,
// and returns its name.
func writeTemp(dir, data string) (string, error) {
	f, err := os.CreateTemp(dir, "."+DevKeyFile+".tmp-*") // CreateTemp uses mode 0600
	if err != nil {
		return "", fmt.Errorf("secret: create temporary dev key file: %w", err)
	}
	name := f.Name()
	_, werr := f.WriteString(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(name)
		return "", fmt.Errorf("secret: write temporary dev key file: %w", werr)
	}
	return name, nil
}

// syncDir makes a new directory entry durable. It is best effort: some
// platforms cannot sync directories, and the key is already usable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// readKeyFile reads and validates a key file. A missing file yields an
// error matching fs.ErrNotExist.
func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("secret: read dev key file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	clear(b)
	if _, err := ParseKeys(s); err != nil {
		return "", fmt.Errorf("secret: dev key file %s is invalid: %w", path, err)
	}
	return s, nil
}
