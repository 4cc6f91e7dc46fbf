package password

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// pwnedServer speaks the Pwned Passwords range API: GET /range/{5 hex},
// answering SUFFIX:COUNT lines for the breached passwords under that prefix
// plus padding lines with count 0 when Add-Padding is set. It fails the
// test if a request carries anything beyond the prefix.
type pwnedServer struct {
	t        *testing.T
	breached map[string]int // full SHA-1 hex -> count
	padding  []string       // full SHA-1 hex of padding entries (count 0)
	secrets  []string       // strings that must never be sent

	mu       sync.Mutex
	prefixes []string
}

var rangePath = regexp.MustCompile(`^/range/[0-9A-F]{5}$`)

func (s *pwnedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	dump := r.URL.String() + fmt.Sprint(r.Header) + string(body)
	for _, secret := range s.secrets {
		if strings.Contains(strings.ToUpper(dump), strings.ToUpper(secret)) {
			s.t.Errorf("request carries %q: %s", secret, dump)
		}
	}
	if r.Method != http.MethodGet || !rangePath.MatchString(r.URL.Path) || r.URL.RawQuery != "" || len(body) != 0 {
		s.t.Errorf("unexpected request %s %s (body %d bytes)", r.Method, r.URL, len(body))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Add-Padding") != "true" {
		s.t.Error("request without Add-Padding: true")
	}
	prefix := strings.TrimPrefix(r.URL.Path, "/range/")
	s.mu.Lock()
	s.prefixes = append(s.prefixes, prefix)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain")
	for h, n := range s.breached {
		if strings.HasPrefix(h, prefix) {
			fmt.Fprintf(w, "%s:%d\r\n", h[5:], n)
		}
	}
	for _, h := range s.padding {
		if strings.HasPrefix(h, prefix) {
			fmt.Fprintf(w, "%s:0\r\n", h[5:])
		}
	}
	// Unrelated suffixes, as real responses have hundreds.
	for i := range 20 {
		fmt.Fprintf(w, "%035X:%d\r\n", i*7919, i+1)
	}
}

func TestHIBPClient(t *testing.T) {
	srv := &pwnedServer{
		t:        t,
		breached: map[string]int{sha1Hex("P@ssw0rd"): 52256, sha1Hex("correct horse battery staple"): 370},
		// A padding entry for exactly the password we look up: count 0
		// means "not breached".
		padding: []string{sha1Hex("only-padding-entry")},
		secrets: []string{"P@ssw0rd", "only-padding-entry", sha1Hex("P@ssw0rd")[5:], sha1Hex("only-padding-entry")[5:], sha1Hex("never-breached")[5:]},
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := NewHIBPClient(ts.URL+"/", ts.Client())
	ctx := context.Background()

	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"P@ssw0rd", true},
		{"correct horse battery staple", true},
		{"only-padding-entry", false},
		{"never-breached", false},
	} {
		got, err := c.Breached(ctx, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("Breached(%q) = %v, %v; want %v, nil", tc.password, got, err, tc.want)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	want := []string{sha1Hex("P@ssw0rd")[:5], sha1Hex("correct horse battery staple")[:5], sha1Hex("only-padding-entry")[:5], sha1Hex("never-breached")[:5]}
	if fmt.Sprint(srv.prefixes) != fmt.Sprint(want) {
		t.Errorf("prefixes sent %v; want %v", srv.prefixes, want)
	}
}

func TestHIBPClientFailures(t *testing.T) {
	ctx := context.Background()
	serve := func(h http.HandlerFunc) *HIBPClient {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return NewHIBPClient(ts.URL, nil)
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"status 503", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }},
		{"status 429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", 429) }},
		{"garbage", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>maintenance</html>\n") }},
		{"bad count", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%035X:lots\r\n", 1)
		}},
		{"short suffix", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ABC:1\r\n") }},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			line := fmt.Sprintf("%035X:1\r\n", 1)
			for range maxHIBPResponse/len(line) + 2 {
				io.WriteString(w, line)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := serve(tc.handler).Breached(ctx, "whatever")
			if err == nil || got {
				t.Errorf("Breached = %v, %v; want false and an error", got, err)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		c := serve(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c.Timeout = 50 * time.Millisecond
		_, err := c.Breached(ctx, "whatever")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v; want a deadline error", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ts := httptest.NewServer(http.NotFoundHandler())
		ts.Close()
		if _, err := NewHIBPClient(ts.URL, nil).Breached(ctx, "whatever"); err == nil {
			t.Error("no error from a closed server")
		}
	})
}

func TestNewHIBPClientDefaults(t *testing.T) {
	c := NewHIBPClient("", nil)
	if c.baseURL != DefaultHIBPBaseURL || c.client.Timeout != DefaultHIBPTimeout || c.Timeout != DefaultHIBPTimeout {
		t.Errorf("defaults: %+v", c)
	}
}

func TestMultiChecker(t *testing.T) {
	ctx := context.Background()
	down := errors.New("down")
	file := &fakeChecker{breached: map[string]bool{"a": true}}
	api := &fakeChecker{breached: map[string]bool{"b": true}}
	broken := &fakeChecker{err: down}

	m := MultiChecker{file, broken, api}
	for _, tc := range []struct {
		pw      string
		want    bool
		wantErr bool
	}{
		{"a", true, false}, // first says yes: done
		{"b", true, false}, // a later one says yes despite a failure
		{"c", false, true}, // nobody says yes, one failed: unknown
	} {
		got, err := m.Breached(ctx, tc.pw)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Breached(%q) = %v, %v; want %v, error %v", tc.pw, got, err, tc.want, tc.wantErr)
		}
		if tc.wantErr && !errors.Is(err, down) {
			t.Errorf("err = %v; want it to wrap the failure", err)
		}
	}
	if len(api.asked) != 2 {
		t.Errorf("the last checker was asked %d times; want 2 (not after a hit)", len(api.asked))
	}
	if got, err := (MultiChecker{file, api}).Breached(ctx, "z"); got || err != nil {
		t.Errorf("all clean: %v, %v", got, err)
	}
}
