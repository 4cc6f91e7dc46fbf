package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unicode"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// The job queue settings of SendArgs.
const (
	// JobKind is the River kind of an SMS job.
	JobKind = "sms.send"
	// QueueName is the River queue SMS jobs go to. The Queue that works
	// them must list it: jobs.Config{Queues: map[string]int{sms.QueueName: n}}.
	// A queue of its own keeps a slow provider from holding up other jobs,
	// and a backlog of other jobs from delaying a sign-in code.
	QueueName = "sms"
	// MaxAttempts is how often an SMS job is tried before River discards
	// it. With the retry delays of retryDelays (2 s, 5 s, 15 s, 30 s) the
	// last attempt comes under a minute after the first, well within the
	// life of the sign-in waiting for the code (5 minutes by default), so
	// that when the provider keeps failing the email code can still be
	// offered to that sign-in (see Worker.OnFailure). River's default
	// backoff (attempt^4 seconds) would give up only after about 6
	// minutes, when the sign-in is gone.
	MaxAttempts = 5
)

// ErrExpired is the error a job fails with when it runs after its
// ExpiresAt: the code it carries is no longer valid, so it is not sent.
// It matches ErrPermanent.
var ErrExpired = fmt.Errorf("%w: the code expired before the message could be sent", ErrPermanent)

// SendArgs are the arguments of an SMS job, stored as JSON in River's
// river_job table. They never hold the message body, and so the code, in
// the clear: make them with NewSendArgs.
type SendArgs struct {
	// To is the recipient in E.164 form.
	To string `json:"to"`
	// SealedBody is the message body sealed with the secret.Keyring,
	// bound to To, UserID and Purpose.
	SealedBody string `json:"sealed_body"`
	// UserID is the account the code is for; empty when there is none
	// yet. Not used for sending; it is for OnSent and OnFailure.
	UserID string `json:"user_id,omitempty"`
	// Purpose names what the code is for ("mfa_login",
	// "phone_verification", …), for OnSent, OnFailure and the logs.
	Purpose string `json:"purpose"`
	// Ref is the caller's own reference, handed back with the arguments to
	// OnSent and OnFailure: the MFA service names the sign-in a code is
	// for, so that a failure opens the email fallback for that sign-in
	// only. It is stored in the clear, so it must not be a secret (a hash
	// of one is fine). Set it after NewSendArgs.
	Ref string `json:"ref,omitempty"`
	// ExpiresAt, when set, is when the code stops being valid: a job that
	// runs later (after retries, or a backlog) fails with ErrExpired
	// instead of paying for a useless message. Set it after NewSendArgs.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return JobKind }

// InsertOpts implements river.JobArgsWithInsertOpts: queue "sms", at most
// MaxAttempts attempts.
func (SendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: MaxAttempts}
}

// Limits on SendArgs fields.
const (
	maxUserIDLen  = 128
	maxPurposeLen = 64
)

// NewSendArgs returns the arguments of a job sending body to the number
// to, with body sealed by keyring. to is normalised (see Normalize) and
// must be valid; body must be 1 to MaxBodyLength characters; purpose is 1
// to 64 of a-z, 0-9, '_', '-' and '.', starting with a letter; userID may
// be empty. The checks happen now, so that a mistake fails the request
// that enqueues the job instead of the job.
//
// Call Guard.Check first; NewSendArgs does not rate-limit. Enqueue the
// result with jobs.Queue.Insert or, better, InsertTx in the transaction
// that stores the code's hash.
func NewSendArgs(keyring *secret.Keyring, to, body, userID, purpose string) (SendArgs, error) {
	e164, err := Normalize(to)
	if err != nil {
		return SendArgs{}, err
	}
	if err := (Message{To: e164, Body: body}).check(); err != nil {
		return SendArgs{}, err
	}
	if err := checkPurpose(purpose); err != nil {
		return SendArgs{}, err
	}
	if len(userID) > maxUserIDLen || containsControl(userID) {
		return SendArgs{}, fmt.Errorf("sms: user id is longer than %d bytes or has control characters", maxUserIDLen)
	}
	if keyring == nil {
		return SendArgs{}, errors.New("sms: a keyring is needed to seal the message body")
	}
	sealed, err := keyring.Seal([]byte(body), bodyAD(e164, userID, purpose))
	if err != nil {
		return SendArgs{}, fmt.Errorf("sms: seal message body: %w", err)
	}
	return SendArgs{To: e164, SealedBody: sealed, UserID: userID, Purpose: purpose}, nil
}

// bodyAD is the associated data binding a sealed body to its job: a body
// copied into a job for another number, user or purpose does not open.
// None of the parts can contain NUL (checked by NewSendArgs).
func bodyAD(to, userID, purpose string) []byte {
	return []byte("gatehouse/sms.send\x00" + to + "\x00" + userID + "\x00" + purpose)
}

func checkPurpose(p string) error {
	ok := p != "" && len(p) <= maxPurposeLen && p[0] >= 'a' && p[0] <= 'z'
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Errorf("sms: purpose must be 1 to %d of a-z, 0-9, '_', '-', '.', starting with a letter", maxPurposeLen)
	}
	return nil
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// hookTimeout bounds OnSent and OnFailure, which run on a context that
// outlives the job's own (it may have just timed out).
const hookTimeout = 10 * time.Second

// Worker works SMS jobs: it opens the sealed body and hands the message to
// the Provider.
//
// A transient failure is retried with River's backoff (see MaxAttempts). A
// job that can never succeed is cancelled at once with river.JobCancel: a
// provider refusal matching ErrPermanent, a recipient that is not a valid
// E.164 number, a sealed body that does not open (tampered, moved to
// another job, or its key removed from the keyring), or a job past its
// ExpiresAt.
//
// Delivery is at least once: if the process dies after Twilio accepted a
// message but before River recorded the job as completed, the message is
// sent again.
type Worker struct {
	river.WorkerDefaults[SendArgs]

	provider Provider
	keyring  *secret.Keyring
	log      *slog.Logger
	Hooks

	now func() time.Time
	// retryDelay, when set, replaces River's backoff; for tests.
	retryDelay func(attempt int) time.Duration
}

// Hooks tell the caller what became of a message. They run on the jobs'
// goroutines, so must be safe for concurrent use, with a context of their
// own that lasts hookTimeout (10 s) even if the job's has ended.
type Hooks struct {
	// OnSent, when set, is called after the provider accepted a message,
	// with the provider's id for it (Twilio's message SID), so the caller
	// can match later delivery statuses (StatusHandler) to the code.
	OnSent func(ctx context.Context, args SendArgs, providerID string)
	// OnFailure, when set, is called once for a message that will not be
	// sent: when its job is cancelled (err matches ErrPermanent) and when
	// its last attempt fails. This is where the caller offers the user
	// the email code instead and records the event. It is not called for
	// an attempt interrupted by shutdown, which River runs again.
	OnFailure func(ctx context.Context, args SendArgs, err error)
}

// NewWorker returns a Worker sending with provider, opening bodies with
// keyring and calling hooks. log may be nil; it receives one record per
// sent message and per message given up on, with the job id, purpose,
// calling code and masked number only.
func NewWorker(provider Provider, keyring *secret.Keyring, log *slog.Logger, hooks Hooks) (*Worker, error) {
	if provider == nil || keyring == nil {
		return nil, errors.New("sms: NewWorker needs a provider and a keyring")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{provider: provider, keyring: keyring, log: log, Hooks: hooks, now: time.Now}, nil
}

// Register adds w to workers. It fails if an SMS worker is registered
// already.
func Register(workers *river.Workers, w *Worker) error {
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return fmt.Errorf("sms: register worker: %w", err)
	}
	return nil
}

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	args := job.Args
	if !args.ExpiresAt.IsZero() && !w.now().Before(args.ExpiresAt) {
		return w.cancel(ctx, job, ErrExpired)
	}
	if _, err := parseE164(args.To); err != nil {
		return w.cancel(ctx, job, fmt.Errorf("%w: the job's recipient is not a valid E.164 number", ErrPermanent))
	}
	body, err := w.keyring.Open(args.SealedBody, bodyAD(args.To, args.UserID, args.Purpose))
	if err != nil {
		return w.cancel(ctx, job, fmt.Errorf("%w: open sealed body: %v", ErrPermanent, err))
	}
	id, err := w.provider.Send(ctx, Message{To: args.To, Body: string(body)})
	if err != nil {
		if errors.Is(err, ErrPermanent) {
			return w.cancel(ctx, job, err)
		}
		// A shutdown cancels ctx with context.Canceled and River puts the
		// job back without counting the attempt; anything else on the last
		// attempt (a job timeout included) is final.
		if job.Attempt >= job.MaxAttempts && !errors.Is(ctx.Err(), context.Canceled) {
			w.giveUp(ctx, job, err)
		}
		return err
	}
	w.log.InfoContext(ctx, "sms: message sent", w.attrs(job, slog.String("provider_id", id))...)
	if w.OnSent != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout)
		defer cancel()
		w.OnSent(hctx, args, id)
	}
	return nil
}

// cancel gives up on job for err and cancels it.
func (w *Worker) cancel(ctx context.Context, job *river.Job[SendArgs], err error) error {
	w.giveUp(ctx, job, err)
	return river.JobCancel(err)
}

// giveUp logs that job's message will not be sent and calls OnFailure.
// Refused credentials are logged as errors: every message fails until an
// operator fixes them.
func (w *Worker) giveUp(ctx context.Context, job *river.Job[SendArgs], err error) {
	level, msg := slog.LevelWarn, "sms: message not sent"
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.HTTPStatus == http.StatusUnauthorized || apiErr.HTTPStatus == http.StatusForbidden) {
		level, msg = slog.LevelError, "sms: message not sent: Twilio refused the credentials; check the account SID and auth token"
	}
	w.log.Log(ctx, level, msg, w.attrs(job, slog.String("error", err.Error()))...)
	if w.OnFailure != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout)
		defer cancel()
		w.OnFailure(hctx, job.Args, err)
	}
}

func (w *Worker) attrs(job *river.Job[SendArgs], extra ...any) []any {
	return append([]any{
		slog.Int64("job_id", job.ID),
		slog.Int("attempt", job.Attempt),
		slog.String("purpose", job.Args.Purpose),
		slog.Int("country_code", CountryCode(job.Args.To)),
		slog.String("to", Mask(job.Args.To)),
	}, extra...)
}

// retryDelays are the waits before the 2nd, 3rd, 4th and 5th attempts.
var retryDelays = []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}

// NextRetry implements river.Worker: the short delays of retryDelays (see
// MaxAttempts), unless a test set retryDelay.
func (w *Worker) NextRetry(job *river.Job[SendArgs]) time.Time {
	if w.retryDelay != nil {
		return time.Now().Add(w.retryDelay(job.Attempt))
	}
	return time.Now().Add(retryDelays[min(max(job.Attempt, 1), len(retryDelays))-1])
}
