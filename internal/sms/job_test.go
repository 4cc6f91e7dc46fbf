package sms

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/secret"
)

// The code in testBody; it must never reach the database or the logs.
const (
	testCode = "913406"
	testBody = "Your Acme code is " + testCode
)

// waitTimeout bounds every wait on the queue; reaching it is a failure,
// not a performance measurement.
const waitTimeout = 30 * time.Second

func newKeyring(t *testing.T) *secret.Keyring {
	t.Helper()
	ks, err := secret.GenerateKeyString("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// testQueue is a started River queue on a fresh SQLite database, working
// SMS jobs with w.
type testQueue struct {
	q      *jobs.Queue
	db     *sql.DB
	dbPath string
}

func startQueue(t *testing.T, w *Worker) *testQueue {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close db: %v", err)
		}
	})
	workers := river.NewWorkers()
	if err := Register(workers, w); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.NewSQLite(db, workers, jobs.Config{
		Queues:            map[string]int{QueueName: 2},
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
	return &testQueue{q: q, db: db, dbPath: path}
}

// jobRow is what a test reads back from river_job.
type jobRow struct {
	state   rivertype.JobState
	attempt int
	queue   string
	args    []byte
	errors  []byte
}

func (tq *testQueue) job(t *testing.T, id int64) jobRow {
	t.Helper()
	var r jobRow
	err := tq.db.QueryRowContext(t.Context(),
		`SELECT state, attempt, queue, json(args), COALESCE(json(errors), '') FROM river_job WHERE id = ?`, id).
		Scan(&r.state, &r.attempt, &r.queue, &r.args, &r.errors)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitState polls job id until it reaches state, failing on any other
// final state or after waitTimeout.
func (tq *testQueue) waitState(t *testing.T, id int64, state rivertype.JobState) jobRow {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		r := tq.job(t, id)
		if r.state == state {
			return r
		}
		switch r.state {
		case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			t.Fatalf("job %d is %s (attempt %d, errors %s), want %s", id, r.state, r.attempt, r.errors, state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after %s, want %s", id, r.state, waitTimeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hookCall is one call of OnSent or OnFailure.
type hookCall struct {
	args       SendArgs
	providerID string
	err        error
}

// hooks records the Worker's hook calls.
type hooks struct {
	mu     sync.Mutex
	sent   []hookCall
	failed []hookCall
}

func (h *hooks) install(w *Worker) {
	w.OnSent = func(ctx context.Context, args SendArgs, id string) {
		if ctx.Err() != nil {
			panic("OnSent got a dead context")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sent = append(h.sent, hookCall{args: args, providerID: id})
	}
	w.OnFailure = func(ctx context.Context, args SendArgs, err error) {
		if ctx.Err() != nil {
			panic("OnFailure got a dead context")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.failed = append(h.failed, hookCall{args: args, err: err})
	}
}

func (h *hooks) calls() (sent, failed []hookCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.sent...), append([]hookCall(nil), h.failed...)
}

func TestJobEndToEnd(t *testing.T) {
	e := startTwilio(t)
	kr := newKeyring(t)
	var logs bytes.Buffer
	w, err := NewWorker(e.provider(), kr, slog.New(slog.NewTextHandler(&logs, nil)), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var h hooks
	h.install(w)
	tq := startQueue(t, w)

	args, err := NewSendArgs(kr, "+1 (415) 555-2671", testBody, "user-1", "mfa_login")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tq.q.Insert(t.Context(), args, nil)
	if err != nil {
		t.Fatal(err)
	}

	m := e.wait(t, waitTimeout)
	if m.To != usNumber || m.Body != testBody || m.From != testFrom {
		t.Errorf("Twilio got %+v", m)
	}
	r := tq.waitState(t, id, rivertype.JobStateCompleted)
	if r.attempt != 1 || r.queue != QueueName {
		t.Errorf("completed on attempt %d in queue %q, want 1 in %q", r.attempt, r.queue, QueueName)
	}

	sent, failed := h.calls()
	if len(sent) != 1 || sent[0].providerID != m.SID || sent[0].args.UserID != "user-1" || sent[0].args.Purpose != "mfa_login" {
		t.Errorf("OnSent calls %+v, want one with SID %s", sent, m.SID)
	}
	if len(failed) != 0 {
		t.Errorf("OnFailure called: %+v", failed)
	}

	// The stored job names the recipient, user and purpose, and holds the
	// body sealed, never in the clear.
	var stored SendArgs
	if err := json.Unmarshal(r.args, &stored); err != nil {
		t.Fatalf("args %s: %v", r.args, err)
	}
	if stored.To != usNumber || stored.UserID != "user-1" || stored.Purpose != "mfa_login" || stored.SealedBody == "" {
		t.Errorf("stored args = %+v", stored)
	}
	if bytes.Contains(r.args, []byte(testCode)) {
		t.Errorf("river_job.args contains the code: %s", r.args)
	}
	// Nor anywhere else in the database files.
	for _, f := range []string{tq.dbPath, tq.dbPath + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(testCode)) {
			t.Errorf("%s contains the code", filepath.Base(f))
		}
	}
	for _, s := range []string{testCode, "4155552671"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("worker log contains %q:\n%s", s, logs.String())
		}
	}
	for _, s := range []string{"purpose=mfa_login", "provider_id=" + m.SID, "country_code=1", "to=+1********71"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("worker log lacks %q:\n%s", s, logs.String())
		}
	}
}

func TestJobRetry(t *testing.T) {
	e := startTwilio(t)
	e.setScript(func(n int) (int, string) {
		if n == 1 {
			return 500, jsonError(20500, 500, "Internal Server Error")
		}
		return 0, ""
	})
	kr := newKeyring(t)
	w, err := NewWorker(e.provider(), kr, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var h hooks
	h.install(w)
	var mu sync.Mutex
	var retries []int
	w.retryDelay = func(attempt int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		retries = append(retries, attempt)
		return 50 * time.Millisecond
	}
	tq := startQueue(t, w)

	args, err := NewSendArgs(kr, usNumber, testBody, "user-1", "mfa_login")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tq.q.Insert(t.Context(), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := tq.waitState(t, id, rivertype.JobStateCompleted)
	if r.attempt != 2 {
		t.Errorf("completed on attempt %d, want 2", r.attempt)
	}
	mu.Lock()
	if fmt.Sprint(retries) != "[1]" {
		t.Errorf("NextRetry called for attempts %v, want [1]", retries)
	}
	mu.Unlock()
	if !bytes.Contains(r.errors, []byte("HTTP 500, error 20500")) {
		t.Errorf("first attempt's error not recorded: %s", r.errors)
	}
	if bytes.Contains(r.errors, []byte(testCode)) {
		t.Errorf("recorded error contains the code: %s", r.errors)
	}
	if n, msgs := e.requestCount(), e.sent(); n != 2 || len(msgs) != 1 || msgs[0].Body != testBody {
		t.Errorf("Twilio saw %d requests and accepted %+v, want 2 and the message", n, msgs)
	}
	if sent, failed := h.calls(); len(sent) != 1 || len(failed) != 0 {
		t.Errorf("OnSent %d times, OnFailure %d times; want 1 and 0", len(sent), len(failed))
	}
}

// TestJobCancelled checks that jobs that can never succeed are cancelled
// on their first attempt, and that OnFailure hears of each once.
func TestJobCancelled(t *testing.T) {
	e := startTwilio(t)
	kr := newKeyring(t)
	w, err := NewWorker(e.provider(), kr, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	w.retryDelay = func(int) time.Duration { return 10 * time.Millisecond }
	var h hooks
	h.install(w)
	tq := startQueue(t, w)

	mustArgs := func(k *secret.Keyring, to, userID string) SendArgs {
		t.Helper()
		a, err := NewSendArgs(k, to, testBody, userID, "mfa_login")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	moved := mustArgs(kr, usNumber, "moved")
	moved.SealedBody = mustArgs(kr, usNumber, "victim").SealedBody
	otherNumber := mustArgs(kr, usNumber, "other-number")
	otherNumber.To = usNumber2
	otherPurpose := mustArgs(kr, usNumber, "other-purpose")
	otherPurpose.Purpose = "phone_verification"
	expired := mustArgs(kr, usNumber, "expired")
	expired.ExpiresAt = time.Now().Add(-time.Second)
	badTo := mustArgs(kr, usNumber, "bad-to")
	badTo.To = "+1415555267"

	tests := []struct {
		name string
		args SendArgs
		want string // in the recorded error
		code int    // Twilio error code, if Twilio refused
	}{
		{"unsubscribed", mustArgs(kr, "+15005550004", "unsubscribed"), "error 21610", 21610},
		{"not a mobile number", mustArgs(kr, "+15005550009", "not-mobile"), "error 21614", 21614},
		{"sealed under an unknown key", mustArgs(newKeyring(t), usNumber, "unknown-key"), "open sealed body", 0},
		{"body sealed for another user", moved, "open sealed body", 0},
		{"body sealed for another number", otherNumber, "open sealed body", 0},
		{"body sealed for another purpose", otherPurpose, "open sealed body", 0},
		{"expired", expired, "expired", 0},
		{"bad recipient", badTo, "not a valid E.164", 0},
	}
	ids := make([]int64, len(tests))
	for i, tt := range tests {
		if ids[i], err = tq.q.Insert(t.Context(), tt.args, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tq.waitState(t, ids[i], rivertype.JobStateCancelled)
			if r.attempt != 1 {
				t.Errorf("cancelled on attempt %d, want 1", r.attempt)
			}
			if !bytes.Contains(r.errors, []byte(tt.want)) {
				t.Errorf("recorded errors %s, want one containing %q", r.errors, tt.want)
			}
			if bytes.Contains(r.errors, []byte(testCode)) {
				t.Errorf("recorded errors contain the code: %s", r.errors)
			}
			_, failed := h.calls()
			var mine []hookCall
			for _, c := range failed {
				if c.args.UserID == tt.args.UserID {
					mine = append(mine, c)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("OnFailure called %d times for this job, want 1", len(mine))
			}
			if !errors.Is(mine[0].err, ErrPermanent) {
				t.Errorf("OnFailure got %v, want an error matching ErrPermanent", mine[0].err)
			}
			var apiErr *APIError
			if tt.code != 0 && (!errors.As(mine[0].err, &apiErr) || apiErr.Code != tt.code) {
				t.Errorf("OnFailure got %v, want Twilio error %d", mine[0].err, tt.code)
			}
		})
	}
	if sent, _ := h.calls(); len(sent) != 0 || len(e.sent()) != 0 {
		t.Errorf("OnSent called %d times, Twilio accepted %d messages; want none", len(sent), len(e.sent()))
	}
	if n := e.requestCount(); n != 2 {
		t.Errorf("Twilio saw %d requests, want 2 (only the jobs it refused)", n)
	}
}

// TestJobRetriesExhausted checks that OnFailure hears of a message whose
// every attempt failed, once, on the last attempt.
func TestJobRetriesExhausted(t *testing.T) {
	e := startTwilio(t)
	e.setScript(func(int) (int, string) { return 503, jsonError(20503, 503, "Service Unavailable") })
	kr := newKeyring(t)
	w, err := NewWorker(e.provider(), kr, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	w.retryDelay = func(int) time.Duration { return 20 * time.Millisecond }
	var h hooks
	h.install(w)
	tq := startQueue(t, w)

	args, err := NewSendArgs(kr, usNumber, testBody, "user-1", "mfa_login")
	if err != nil {
		t.Fatal(err)
	}
	args.Ref = "sign-in-7"
	id, err := tq.q.Insert(t.Context(), args, &river.InsertOpts{MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := tq.waitState(t, id, rivertype.JobStateDiscarded)
	if r.attempt != 3 || r.queue != QueueName {
		t.Errorf("discarded after attempt %d in queue %q, want 3 in %q", r.attempt, r.queue, QueueName)
	}
	_, failed := h.calls()
	if len(failed) != 1 {
		t.Fatalf("OnFailure called %d times, want once", len(failed))
	}
	var apiErr *APIError
	if errors.Is(failed[0].err, ErrPermanent) || !errors.As(failed[0].err, &apiErr) || apiErr.HTTPStatus != 503 {
		t.Errorf("OnFailure got %v, want the last 503", failed[0].err)
	}
	if failed[0].args.Ref != "sign-in-7" {
		t.Errorf("OnFailure got Ref %q, want the caller's reference back", failed[0].args.Ref)
	}
	if n := e.requestCount(); n != 3 {
		t.Errorf("Twilio saw %d requests, want 3", n)
	}
}

func TestJobToOutbox(t *testing.T) {
	o, err := NewOutbox(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t)
	w, err := NewWorker(o, kr, nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var h hooks
	h.install(w)
	tq := startQueue(t, w)
	args, err := NewSendArgs(kr, ukMobile, testBody, "", "phone_verification")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tq.q.Insert(t.Context(), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	tq.waitState(t, id, rivertype.JobStateCompleted)
	sent, _ := h.calls()
	if len(sent) != 1 {
		t.Fatalf("OnSent called %d times", len(sent))
	}
	raw, err := os.ReadFile(filepath.Join(o.Dir(), sent[0].providerID))
	if err != nil {
		t.Fatal(err)
	}
	if want := "To: " + ukMobile + "\n\n" + testBody + "\n"; string(raw) != want {
		t.Errorf("outbox file holds %q, want %q", raw, want)
	}
}

func TestNewSendArgs(t *testing.T) {
	kr := newKeyring(t)
	t.Run("seals the body", func(t *testing.T) {
		a, err := NewSendArgs(kr, " +44 7400 123456 ", testBody, "user-1", "mfa_login")
		if err != nil {
			t.Fatal(err)
		}
		if a.To != ukMobile || a.UserID != "user-1" || a.Purpose != "mfa_login" || !a.ExpiresAt.IsZero() {
			t.Errorf("args = %+v", a)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(testCode)) || bytes.Contains(b, []byte("expires_at")) {
			t.Errorf("args JSON = %s", b)
		}
		body, err := kr.Open(a.SealedBody, bodyAD(ukMobile, "user-1", "mfa_login"))
		if err != nil || string(body) != testBody {
			t.Errorf("sealed body opens to %q (%v)", body, err)
		}
		if _, err := kr.Open(a.SealedBody, bodyAD(ukMobile, "user-2", "mfa_login")); err == nil {
			t.Error("sealed body opens for another user")
		}
		if a.Kind() != "sms.send" {
			t.Errorf("Kind = %q", a.Kind())
		}
		if o := a.InsertOpts(); o.Queue != "sms" || o.MaxAttempts != MaxAttempts {
			t.Errorf("InsertOpts = %+v", o)
		}
	})

	tests := []struct {
		name, to, body, userID, purpose string
		keyring                         bool
		want                            error
	}{
		{"no +", "4155552671", testBody, "u", "mfa_login", true, ErrInvalidPhone},
		{"invalid number", "+1415555267", testBody, "u", "mfa_login", true, ErrInvalidPhone},
		{"empty body", usNumber, "", "u", "mfa_login", true, ErrPermanent},
		{"body too long", usNumber, strings.Repeat("x", MaxBodyLength+1), "u", "mfa_login", true, ErrPermanent},
		{"no purpose", usNumber, testBody, "u", "", true, nil},
		{"purpose with a NUL", usNumber, testBody, "u", "mfa\x00login", true, nil},
		{"upper-case purpose", usNumber, testBody, "u", "MFA", true, nil},
		{"user id with a NUL", usNumber, testBody, "u\x00v", "mfa_login", true, nil},
		{"user id too long", usNumber, testBody, strings.Repeat("u", 129), "mfa_login", true, nil},
		{"no keyring", usNumber, testBody, "u", "mfa_login", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := kr
			if !tt.keyring {
				k = nil
			}
			a, err := NewSendArgs(k, tt.to, tt.body, tt.userID, tt.purpose)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("NewSendArgs = %+v, %v; want error %v", a, err, tt.want)
			}
			if strings.Contains(err.Error(), testCode) {
				t.Errorf("error contains the code: %v", err)
			}
		})
	}
}

func TestNewWorkerAndRegister(t *testing.T) {
	if _, err := NewWorker(nil, newKeyring(t), nil, Hooks{}); err == nil {
		t.Error("NewWorker without a provider succeeded")
	}
	if _, err := NewWorker(&Outbox{}, nil, nil, Hooks{}); err == nil {
		t.Error("NewWorker without a keyring succeeded")
	}
	w, err := NewWorker(&Outbox{}, newKeyring(t), nil, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	if err := Register(workers, w); err != nil {
		t.Fatal(err)
	}
	if err := Register(workers, w); err == nil {
		t.Fatal("second Register did not fail")
	}
}

// TestJobBadCredentials checks that refused credentials cancel the job and
// are logged as an error, without the token.
func TestJobBadCredentials(t *testing.T) {
	e := startTwilio(t)
	tw := e.provider()
	tw.AuthToken = "stale-token-after-rotation"
	kr := newKeyring(t)
	var logs bytes.Buffer
	w, err := NewWorker(tw, kr, slog.New(slog.NewJSONHandler(&logs, nil)), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var h hooks
	h.install(w)
	tq := startQueue(t, w)
	args, err := NewSendArgs(kr, usNumber, testBody, "user-1", "mfa_login")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tq.q.Insert(t.Context(), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := tq.waitState(t, id, rivertype.JobStateCancelled)
	if !bytes.Contains(r.errors, []byte("HTTP 401, error 20003")) {
		t.Errorf("recorded errors %s", r.errors)
	}
	if _, failed := h.calls(); len(failed) != 1 {
		t.Errorf("OnFailure called %d times, want once", len(failed))
	}
	var rec struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("log is not one JSON record: %v\n%s", err, logs.String())
	}
	if rec.Level != "ERROR" || !strings.Contains(rec.Msg, "credentials") {
		t.Errorf("logged %+v, want an error about the credentials", rec)
	}
	for _, s := range []string{tw.AuthToken, testCode} {
		if strings.Contains(logs.String(), s) || bytes.Contains(r.errors, []byte(s)) {
			t.Errorf("log or job errors contain %q", s)
		}
	}
}

// TestRetriesEndWithinASignIn checks that an SMS job that keeps failing
// gives up within a minute, while the sign-in that waits for its code
// (5 minutes by default) can still be offered the email code.
func TestRetriesEndWithinASignIn(t *testing.T) {
	w := &Worker{}
	var total time.Duration
	for attempt := 1; attempt < MaxAttempts; attempt++ {
		start := time.Now()
		total += w.NextRetry(&river.Job[SendArgs]{JobRow: &rivertype.JobRow{Attempt: attempt}}).Sub(start)
	}
	if total > time.Minute+time.Second || total < 50*time.Second {
		t.Errorf("the retries of %d attempts wait %v in all, want under a minute", MaxAttempts, total)
	}
}
