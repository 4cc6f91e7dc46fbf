package sms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	var logs bytes.Buffer
	o, err := NewOutbox(dir, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	o.Now = func() time.Time { return time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*3600)) }

	id, err := o.Send(t.Context(), Message{To: "+447400123456", Body: "Your Acme code is 913406"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox holds %d entries, want 1", len(entries))
	}
	name := entries[0].Name()
	if !regexp.MustCompile(`^20250607T060910\.123456789Z-[0-9a-f]{12}\.sms$`).MatchString(name) {
		t.Errorf("file name %q, want <UTC time>-<random>.sms", name)
	}
	if id != name {
		t.Errorf("provider id %q, want the file name %q", id, name)
	}
	fi, err := entries[0].Info()
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if want := "To: +447400123456\n\nYour Acme code is 913406\n"; string(raw) != want {
		t.Errorf("file holds %q, want %q", raw, want)
	}

	// One log record with the calling code and masked number only.
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("log is not one JSON record: %v\n%s", err, logs.String())
	}
	for _, k := range []string{"time", "level", "msg"} {
		delete(rec, k)
	}
	want := map[string]any{"country_code": float64(44), "to": "+44********56", "file": name}
	if fmt.Sprint(rec) != fmt.Sprint(want) {
		t.Errorf("log attributes = %v, want %v", rec, want)
	}
	for _, s := range []string{"913406", "7400123456", "Acme"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains %q: %s", s, logs.String())
		}
	}
}

func TestOutboxConcurrent(t *testing.T) {
	o, err := NewOutbox(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := o.Send(t.Context(), Message{To: testUS, Body: fmt.Sprintf("code %06d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	files, err := filepath.Glob(filepath.Join(o.Dir(), "*.sms"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := os.ReadDir(o.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n || len(all) != n {
		t.Errorf("%d .sms files and %d entries, want %d of each (no temporary files left)", len(files), len(all), n)
	}
}

func TestOutboxRefuses(t *testing.T) {
	o, err := NewOutbox(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{{To: "4155552671", Body: "x"}, {To: testUS}} {
		if _, err := o.Send(t.Context(), m); !errors.Is(err, ErrPermanent) {
			t.Errorf("Send(%+v) = %v, want ErrPermanent", m, err)
		}
	}
	if entries, _ := os.ReadDir(o.Dir()); len(entries) != 0 {
		t.Errorf("outbox holds %d entries after refused sends", len(entries))
	}
	if _, err := NewOutbox("", nil); err == nil {
		t.Error("NewOutbox(\"\") succeeded")
	}
}

func TestOutboxTightensExistingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewOutbox(dir, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}
