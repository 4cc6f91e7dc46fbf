package mail

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

	"github.com/emersion/go-smtp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite"

	"github.com/gatehouse/gatehouse/internal/jobs"
)

// The token inside testLink; it must never reach the database.
const testToken = "tok_9f8e7d6c5b4a"

// waitTimeout bounds every wait on the queue; reaching it is a failure,
// not a performance measurement.
const waitTimeout = 30 * time.Second

// testQueue is a started River queue on a fresh SQLite database, working
// mail jobs with w.
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
	args    []byte
	errors  []byte
}

func (tq *testQueue) job(t *testing.T, id int64) jobRow {
	t.Helper()
	var r jobRow
	err := tq.db.QueryRowContext(t.Context(),
		`SELECT state, attempt, json(args), COALESCE(json(errors), '') FROM river_job WHERE id = ?`, id).
		Scan(&r.state, &r.attempt, &r.args, &r.errors)
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

func TestJobEndToEnd(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true, user: "mailer", pass: "pw"})
	sender := newSMTP(t, srv.url("smtp", "mailer:pw", ""))
	kr := newKeyring(t)
	var logs bytes.Buffer
	w, err := NewWorker(newRenderer(t), sender, kr, testFrom, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tq := startQueue(t, w)

	args, err := NewSendArgs(kr, PasswordReset, "Zoë <zoe@example.com>",
		Data{RecipientName: "Zoë", ExpiresIn: time.Hour, IP: "198.51.100.7"}, testLink)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tq.q.Insert(t.Context(), args, nil)
	if err != nil {
		t.Fatal(err)
	}

	d := srv.wait(t, waitTimeout)
	checkDelivered(t, d)
	if !d.tls || d.authUser != "mailer" {
		t.Errorf("delivered with tls %v as %q", d.tls, d.authUser)
	}
	if p := parseEmail(t, d.raw); !strings.Contains(p.text, "198.51.100.7") {
		t.Errorf("job data did not reach the message:\n%s", p.text)
	}
	r := tq.waitState(t, id, rivertype.JobStateCompleted)
	if r.attempt != 1 {
		t.Errorf("completed on attempt %d, want 1", r.attempt)
	}

	// The stored job names the message and recipient, and holds the link
	// sealed, never in the clear.
	var stored SendArgs
	if err := json.Unmarshal(r.args, &stored); err != nil {
		t.Fatalf("args %s: %v", r.args, err)
	}
	if stored.Template != PasswordReset || stored.To != "Zoë <zoe@example.com>" || stored.SealedLink == "" {
		t.Errorf("stored args = %+v", stored)
	}
	for _, s := range []string{testToken, testLink, "auth.acme.test"} {
		if bytes.Contains(r.args, []byte(s)) {
			t.Errorf("river_job.args contains %q: %s", s, r.args)
		}
	}
	var q string
	if err := tq.db.QueryRowContext(t.Context(), `SELECT queue FROM river_job WHERE id = ?`, id).Scan(&q); err != nil || q != QueueName {
		t.Errorf("job queue = %q (%v), want %q", q, err, QueueName)
	}
	// Nor anywhere else in the database files.
	for _, f := range []string{tq.dbPath, tq.dbPath + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(testToken)) {
			t.Errorf("%s contains the token", filepath.Base(f))
		}
	}
	if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), "zoe@") {
		t.Errorf("worker log contains the token or the recipient:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "template=password_reset") {
		t.Errorf("worker did not log the sent message:\n%s", logs.String())
	}
}

func TestJobRetry(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true, dataErr: func(n int) error {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem"}
		}
		return nil
	}})
	kr := newKeyring(t)
	w, err := NewWorker(newRenderer(t), newSMTP(t, srv.url("smtp", "", "")), kr, testFrom, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var retries []int
	w.retryDelay = func(attempt int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		retries = append(retries, attempt)
		return 50 * time.Millisecond
	}
	tq := startQueue(t, w)

	args, err := NewSendArgs(kr, PasswordReset, "Zoë <zoe@example.com>", Data{RecipientName: "Zoë"}, testLink)
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
	defer mu.Unlock()
	if fmt.Sprint(retries) != "[1]" {
		t.Errorf("NextRetry called for attempts %v, want [1]", retries)
	}
	if !bytes.Contains(r.errors, []byte("451")) {
		t.Errorf("first attempt's error not recorded: %s", r.errors)
	}
	if bytes.Contains(r.errors, []byte(testToken)) {
		t.Errorf("recorded error contains the token: %s", r.errors)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server accepted %d messages, want 1", len(msgs))
	}
	checkDelivered(t, msgs[0])
}

// TestJobCancelled checks that jobs that can never succeed are cancelled
// on their first attempt instead of being retried.
func TestJobCancelled(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true, rcptErr: func(to string) error {
		if to == "gone@example.com" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		}
		return nil
	}})
	kr := newKeyring(t)
	w, err := NewWorker(newRenderer(t), newSMTP(t, srv.url("smtp", "", "")), kr, testFrom, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.retryDelay = func(int) time.Duration { return 10 * time.Millisecond }
	tq := startQueue(t, w)

	otherKeyring, err := NewSendArgs(newKeyring(t), PasswordReset, "zoe@example.com", Data{}, testLink)
	if err != nil {
		t.Fatal(err)
	}
	forOther, err := NewSendArgs(kr, PasswordReset, "mallory@example.com", Data{}, testLink)
	if err != nil {
		t.Fatal(err)
	}
	movedLink := SendArgs{Template: PasswordReset, To: "zoe@example.com", SealedLink: forOther.SealedLink}
	forVerify, err := NewSendArgs(kr, VerifyEmail, "zoe@example.com", Data{}, testLink)
	if err != nil {
		t.Fatal(err)
	}
	otherTemplate := SendArgs{Template: PasswordReset, To: "zoe@example.com", SealedLink: forVerify.SealedLink}
	rejected, err := NewSendArgs(kr, PasswordChanged, "gone@example.com", Data{}, "")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args SendArgs
		want string // in the recorded error
	}{
		{"sealed under an unknown key", otherKeyring, "open sealed link"},
		{"link sealed for another recipient", movedLink, "open sealed link"},
		{"link sealed for another message", otherTemplate, "open sealed link"},
		{"unknown template", SendArgs{Template: "welcome", To: "zoe@example.com"}, "unknown message template"},
		{"link missing", SendArgs{Template: PasswordReset, To: "zoe@example.com"}, "needs a link"},
		{"bad recipient", SendArgs{Template: PasswordChanged, To: "zoe@example.com\r\nBcc: x@example.com"}, "line break"},
		{"recipient rejected", rejected, "550"},
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
		})
	}
	if n := len(srv.messages()); n != 0 {
		t.Errorf("server accepted %d messages, want none", n)
	}
}

func TestNewSendArgs(t *testing.T) {
	kr := newKeyring(t)
	t.Run("seals the link", func(t *testing.T) {
		a, err := NewSendArgs(kr, VerifyEmail, "zoe@example.com", Data{RecipientName: "Zoë", ExpiresIn: time.Hour}, testLink)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(testToken)) || a.Data.Link != "" {
			t.Errorf("args hold the link in the clear: %s", b)
		}
		link, err := kr.Open(a.SealedLink, linkAD(VerifyEmail, "zoe@example.com"))
		if err != nil || string(link) != testLink {
			t.Errorf("sealed link opens to %q (%v)", link, err)
		}
		if a.Kind() != "mail.send" {
			t.Errorf("Kind = %q", a.Kind())
		}
		if o := a.InsertOpts(); o.Queue != "mail" || o.MaxAttempts != MaxAttempts {
			t.Errorf("InsertOpts = %+v", o)
		}
	})
	t.Run("Data.Link is never serialized", func(t *testing.T) {
		b, err := json.Marshal(SendArgs{Data: Data{Link: testLink}})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(testToken)) {
			t.Errorf("Data.Link serialized: %s", b)
		}
	})
	t.Run("no link", func(t *testing.T) {
		a, err := NewSendArgs(kr, AccountLocked, "zoe@example.com", Data{UnlockAt: time.Now()}, "")
		if err != nil {
			t.Fatal(err)
		}
		if a.SealedLink != "" {
			t.Errorf("SealedLink = %q for a message without a link", a.SealedLink)
		}
	})

	tests := []struct {
		name, template, to, link string
		data                     Data
		keyring                  bool
		want                     error
	}{
		{"link in data", VerifyEmail, "zoe@example.com", "", Data{Link: testLink}, true, ErrLink},
		{"missing link", VerifyEmail, "zoe@example.com", "", Data{}, true, ErrLink},
		{"link on notice", EmailChangeNotice, "old@example.com", testLink, Data{}, true, ErrLink},
		{"bad link", PasswordReset, "zoe@example.com", "ftp://x/" + testToken, Data{}, true, ErrLink},
		{"unknown template", "welcome", "zoe@example.com", "", Data{}, true, ErrUnknownTemplate},
		{"bad recipient", PasswordChanged, "zoe", "", Data{}, true, ErrAddress},
		{"non-ASCII recipient", PasswordChanged, "zoë@example.com", "", Data{}, true, ErrAddress},
		{"header injection", PasswordChanged, "zoe@example.com\nBcc: x@example.com", "", Data{}, true, ErrHeader},
		{"no keyring", VerifyEmail, "zoe@example.com", testLink, Data{}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := kr
			if !tt.keyring {
				k = nil
			}
			_, err := NewSendArgs(k, tt.template, tt.to, tt.data, tt.link)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
}

func TestRegisterTwice(t *testing.T) {
	w, err := NewWorker(newRenderer(t), &Outbox{}, newKeyring(t), testFrom, nil)
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

func TestCodeArgsSealTheCode(t *testing.T) {
	kr := newKeyring(t)
	args, err := NewCodeArgs(kr, MFACode, "ann@example.com", Data{ExpiresIn: 10 * time.Minute}, "493817")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(args)
	if strings.Contains(string(raw), "493817") {
		t.Fatalf("job args hold the code in clear: %s", raw)
	}
	code, err := kr.Open(args.SealedCode, codeAD(MFACode, "ann@example.com"))
	if err != nil || string(code) != "493817" {
		t.Fatalf("sealed code = %q, %v", code, err)
	}
	if _, err := kr.Open(args.SealedCode, codeAD(MFACode, "mallory@example.com")); err == nil {
		t.Error("a sealed code opens for another recipient")
	}
	if _, err := NewCodeArgs(kr, PasswordChanged, "ann@example.com", Data{}, "1"); !errors.Is(err, ErrCode) {
		t.Errorf("code on a message without one: %v", err)
	}
}
