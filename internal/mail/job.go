package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// The job queue settings of SendArgs.
const (
	// JobKind is the River kind of a mail job.
	JobKind = "mail.send"
	// QueueName is the River queue mail jobs go to. The Queue that works
	// them must list it: jobs.Config{Queues: map[string]int{mail.QueueName: n}}.
	// A queue of its own keeps a slow SMTP server from holding up other
	// jobs, and other jobs from delaying a password reset.
	QueueName = "mail"
	// MaxAttempts is how often a mail job is tried before River discards
	// it. With River's default backoff (attempt^4 seconds, ±10% jitter:
	// 1 s, 16 s, 81 s, 4 min, 10 min, 22 min, 40 min, 68 min, 1.8 h,
	// 2.8 h, 4.1 h) the last attempt comes about 11 hours after the first:
	// long enough to ride out an SMTP outage or fix a misconfiguration,
	// short enough that a stale verification mail is not sent days late.
	MaxAttempts = 12
)

// SendArgs are the arguments of a mail job, stored as JSON in River's
// river_job table. They never hold the one-time link in the clear: make
// them with NewSendArgs.
type SendArgs struct {
	Template string `json:"template"`
	To       string `json:"to"`
	// Data holds only non-secret fields; its Link is not serialized.
	Data Data `json:"data"`
	// SealedLink is the link sealed with the secret.Keyring, bound to
	// Template and To; empty for messages without a link.
	SealedLink string `json:"sealed_link,omitempty"`
	// SealedCode is the one-time code of MFACode, sealed like SealedLink.
	SealedCode string `json:"sealed_code,omitempty"`
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return JobKind }

// InsertOpts implements river.JobArgsWithInsertOpts: queue "mail", at most
// MaxAttempts attempts.
func (SendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: MaxAttempts}
}

// NewSendArgs returns the arguments of a job sending message template to
// the address to, with link sealed by keyring. link must be given for the
// messages that need one and empty for the others, and is passed here
// rather than in data.Link (which must be empty). The link is checked and
// the recipient parsed now, so that a mistake fails the request that
// enqueues the job instead of the job.
//
// Enqueue the result with jobs.Queue.Insert or, better, InsertTx in the
// transaction that stores the token the link carries.
func NewSendArgs(keyring *secret.Keyring, template, to string, data Data, link string) (SendArgs, error) {
	if data.Link != "" {
		return SendArgs{}, fmt.Errorf("%w: pass the link as NewSendArgs' link argument, not in Data", ErrLink)
	}
	if err := checkLink(template, link); err != nil {
		return SendArgs{}, err
	}
	if _, err := parseAddress("To", to); err != nil {
		return SendArgs{}, err
	}
	args := SendArgs{Template: template, To: to, Data: data}
	if link != "" {
		if keyring == nil {
			return SendArgs{}, errors.New("mail: a keyring is needed to seal the link")
		}
		sealed, err := keyring.Seal([]byte(link), linkAD(template, to))
		if err != nil {
			return SendArgs{}, fmt.Errorf("mail: seal link: %w", err)
		}
		args.SealedLink = sealed
	}
	return args, nil
}

// NewCodeArgs returns the arguments of a job sending a message that carries
// a one-time code (MFACode), with the code sealed by keyring like a link.
func NewCodeArgs(keyring *secret.Keyring, template, to string, data Data, code string) (SendArgs, error) {
	if !needsCode[template] || code == "" || data.Code != "" {
		return SendArgs{}, fmt.Errorf("%w: %s", ErrCode, template)
	}
	args, err := NewSendArgs(keyring, template, to, data, "")
	if err != nil {
		return SendArgs{}, err
	}
	if keyring == nil {
		return SendArgs{}, errors.New("mail: a keyring is needed to seal the code")
	}
	sealed, err := keyring.Seal([]byte(code), codeAD(template, to))
	if err != nil {
		return SendArgs{}, fmt.Errorf("mail: seal code: %w", err)
	}
	args.SealedCode = sealed
	return args, nil
}

func codeAD(template, to string) []byte {
	return []byte("gatehouse/mail.send/code\x00" + template + "\x00" + to)
}

// linkAD is the associated data binding a sealed link to its job: a link
// copied into a job for another recipient or message does not open.
func linkAD(template, to string) []byte {
	return []byte("gatehouse/mail.send\x00" + template + "\x00" + to)
}

// Worker works mail jobs: it opens the sealed link, renders the message
// and sends it.
//
// A failed send is retried with River's exponential backoff (see
// MaxAttempts). A job that can never succeed is cancelled at once with
// river.JobCancel instead: an unknown template, a recipient or link that
// does not pass the checks, a sealed link that does not open (tampered, or
// its key was removed from the keyring), or a permanent SMTP rejection of
// the message (ErrRejected).
//
// Delivery is at least once: if the process dies after the SMTP server
// accepted a message but before River recorded the job as completed, the
// job is run, and the message sent, again.
type Worker struct {
	river.WorkerDefaults[SendArgs]

	renderer *Renderer
	sender   Sender
	keyring  *secret.Keyring
	from     string
	log      *slog.Logger

	// retryDelay, when set, replaces River's backoff; for tests.
	retryDelay func(attempt int) time.Duration
}

// NewWorker returns a Worker sending from the address from. log may be
// nil; it receives one record per sent message with the template name
// and job id only.
func NewWorker(renderer *Renderer, sender Sender, keyring *secret.Keyring, from string, log *slog.Logger) (*Worker, error) {
	if renderer == nil || sender == nil || keyring == nil {
		return nil, errors.New("mail: NewWorker needs a renderer, a sender and a keyring")
	}
	if err := checkFrom(from); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{renderer: renderer, sender: sender, keyring: keyring, from: from, log: log}, nil
}

// Register adds w to workers. It fails if a mail worker is registered
// already.
func Register(workers *river.Workers, w *Worker) error {
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return fmt.Errorf("mail: register worker: %w", err)
	}
	return nil
}

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	args := job.Args
	if _, ok := needsLink[args.Template]; !ok {
		return river.JobCancel(fmt.Errorf("%w: %q", ErrUnknownTemplate, args.Template))
	}
	data := args.Data
	if args.SealedLink != "" {
		link, err := w.keyring.Open(args.SealedLink, linkAD(args.Template, args.To))
		if err != nil {
			return river.JobCancel(fmt.Errorf("mail: open sealed link: %w", err))
		}
		data.Link = string(link)
	}
	if args.SealedCode != "" {
		code, err := w.keyring.Open(args.SealedCode, codeAD(args.Template, args.To))
		if err != nil {
			return river.JobCancel(fmt.Errorf("mail: open sealed code: %w", err))
		}
		data.Code = string(code)
	}
	msg, err := w.renderer.Render(args.Template, data)
	if err != nil {
		return river.JobCancel(err)
	}
	msg.From, msg.To = w.from, args.To
	if err := msg.Validate(); err != nil {
		return river.JobCancel(err)
	}
	if err := w.sender.Send(ctx, msg); err != nil {
		if errors.Is(err, ErrRejected) {
			return river.JobCancel(err)
		}
		return err
	}
	w.log.InfoContext(ctx, "mail: message sent",
		slog.String("template", args.Template), slog.Int64("job_id", job.ID), slog.Int("attempt", job.Attempt))
	return nil
}

// NextRetry implements river.Worker. It returns the zero time, which
// selects River's default exponential backoff, unless a test set
// retryDelay.
func (w *Worker) NextRetry(job *river.Job[SendArgs]) time.Time {
	if w.retryDelay == nil {
		return time.Time{}
	}
	return time.Now().Add(w.retryDelay(job.Attempt))
}
