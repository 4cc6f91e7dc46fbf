package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/store"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                               0,
		"120":                            2 * time.Minute,
		" 7 ":                            7 * time.Second,
		"0":                              0,
		"-5":                             0,
		"soon":                           0,
		"1.5":                            0,
		"99999999999999":                 MaxRetryAfter,
		"Fri, 02 Jan 2026 03:05:05 GMT":  time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT":  0, // past
		"Friday, 02-Jan-26 03:14:05 GMT": 10 * time.Minute,
	}
	for in, want := range cases {
		if got := retryAfter(in, now); got != want {
			t.Errorf("Retry-After %q = %s, want %s", in, got, want)
		}
	}
}

func TestTrailingFailures(t *testing.T) {
	ok := store.WebhookAttempt{StatusCode: 200}
	bad := store.WebhookAttempt{StatusCode: 500, Error: "HTTP 500"}
	none := store.WebhookAttempt{Error: "timed out"}
	cases := []struct {
		as   []store.WebhookAttempt
		want int
	}{
		{nil, 0},
		{[]store.WebhookAttempt{bad, none}, 2},
		{[]store.WebhookAttempt{bad, ok}, 0},
		{[]store.WebhookAttempt{bad, bad, ok, bad}, 1},
		{[]store.WebhookAttempt{{StatusCode: 410, Error: "gone"}}, 1},
	}
	for i, tc := range cases {
		if got := trailingFailures(tc.as); got != tc.want {
			t.Errorf("case %d: %d, want %d", i, got, tc.want)
		}
	}
}

func TestValidText(t *testing.T) {
	cut := []byte("ok é")[:4] // "ok " and half of é
	cases := map[string]string{
		"plain":             "plain",
		"nul\x00byte":       "nulbyte",
		"bad \xff byte":     "bad \uFFFD byte",
		string(cut):         "ok ",
		"emoji 😀":           "emoji 😀",
		string("😀"[:3]):     "",
		"ends \xe2\x82\xac": "ends €",
	}
	for in, want := range cases {
		got := validText([]byte(in))
		if got != want {
			t.Errorf("validText(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("validText(%q) = %q is not storable", in, got)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestAttemptErrorHidesTheURL(t *testing.T) {
	const u = "https://hooks.example.com/in?token=s3cr3t"
	refusedErr := &url.Error{Op: "Post", URL: u, Err: &net.OpError{Op: "dial", Net: "tcp", Err: refused("the host connected to is a loopback address")}}
	cases := map[string]struct {
		err  error
		want string
	}{
		"refused":  {refusedErr, "webhook destination refused: the host connected to is a loopback address"},
		"timeout":  {&url.Error{Op: "Post", URL: u, Err: timeoutErr{}}, "timed out after 10s"},
		"deadline": {fmt.Errorf("x: %w", context.DeadlineExceeded), "timed out after 10s"},
		"refused connection": {&url.Error{Op: "Post", URL: u, Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}},
			"dial tcp: connect: connection refused"},
		"long": {errors.New(strings.Repeat("x", 1000)), strings.Repeat("x", maxErrorLen)},
	}
	for name, tc := range cases {
		got := attemptError(tc.err, 10*time.Second)
		if got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
		if strings.Contains(got, "s3cr3t") || strings.Contains(got, "hooks.example.com/in") {
			t.Errorf("%s: %q quotes the URL", name, got)
		}
	}
}
