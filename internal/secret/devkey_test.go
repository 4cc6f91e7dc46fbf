package secret

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateDevKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	now := func() time.Time { return time.Date(2026, 3, 4, 23, 0, 0, 0, time.FixedZone("X", -5*3600)) }

	keys, created, err := loadOrCreateDevKey(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first call")
	}
	if !strings.HasPrefix(keys, "dev-20260305:") {
		t.Errorf("key %q should be named dev-<UTC date>", keys)
	}
	kr := mustParse(t, keys)
	if kr.CurrentKeyID() != "dev-20260305" {
		t.Errorf("CurrentKeyID = %q", kr.CurrentKeyID())
	}

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(dir, DevKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode %v, want 0600", perm)
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Errorf("key dir mode %v, want 0700", perm)
		}
	}

	again, created, err := LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if created || again != keys {
		t.Errorf("second call = %q, created %v; want the same key, not created", again, created)
	}
	assertNoTempFiles(t, dir)
}

func TestLoadOrCreateDevKeyConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	const n = 20
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		keys    [n]string
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], created[i], errs[i] = LoadOrCreateDevKey(dir)
		})
	}
	close(start)
	wg.Wait()

	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("caller %d got a different key than caller 0", i)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report creating the file, want 1", creators)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(onDisk)) != keys[0] {
		t.Error("file on disk differs from the key returned")
	}
	assertNoTempFiles(t, dir)
}

func TestLoadOrCreateDevKeyExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DevKeyFile)

	// An operator-edited file with two keys and surrounding whitespace.
	content := "\n  " + entry("new", keyB) + "," + entry("old", keyA) + "  \n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, created, err := LoadOrCreateDevKey(dir)
	if err != nil || created || keys != strings.TrimSpace(content) {
		t.Fatalf("LoadOrCreateDevKey = %q, %v, %v", keys, created, err)
	}

	// An invalid file is reported, without its contents, and left alone.
	bad := "k1:" + strings.Repeat("Zm9v", 4)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadOrCreateDevKey(dir)
	if err == nil {
		t.Fatal("invalid key file accepted")
	}
	if strings.Contains(err.Error(), "Zm9v") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should name the file and not its contents", err)
	}
	if b, _ := os.ReadFile(path); string(b) != bad {
		t.Error("invalid key file was modified")
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != DevKeyFile {
			t.Errorf("stray file %q left in %s", e.Name(), dir)
		}
	}
}
