package user

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// The kinds of emailed request a client can make about an address it
// names, without proving it owns it.
const (
	RequestPasswordReset = "password_reset"
	RequestVerification  = "verification"
)

// EmailRequestJobKind is the River kind of EmailRequestArgs.
const EmailRequestJobKind = "user.email_request"

// EmailRequestArgs is a forgot-password or resend-verification request,
// handed from the request to a job so that the request does the same work
// whether or not the address has an account: the lookup, the token, the
// audit event and the email all happen in the job. The address is sealed
// with the keyring (bound to the kind of request): the job table never
// holds it in the clear, whether or not it belongs to an account.
type EmailRequestArgs struct {
	Request     string `json:"request"` // RequestPasswordReset or RequestVerification
	SealedEmail string `json:"sealed_email"`
	IP          string `json:"ip,omitempty"`
	UserAgent   string `json:"user_agent,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
	// RequestedAt is when the client asked. A request still unworked once
	// the link it asks for would have expired is dropped: a link arriving
	// that late answers nothing the user is still waiting for.
	RequestedAt time.Time `json:"requested_at,omitzero"`
}

// Kind implements river.JobArgs.
func (EmailRequestArgs) Kind() string { return EmailRequestJobKind }

// InsertOpts implements river.JobArgsWithInsertOpts: the mail queue (the
// job's only purpose is an email, and the mail queue keeps other work from
// delaying it), retried like mail jobs.
func (EmailRequestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: mail.QueueName, MaxAttempts: mail.MaxAttempts}
}

func emailRequestAD(request string) []byte {
	return []byte("gatehouse/user.email_request\x00" + request)
}

// enqueueEmailRequest validates the address, applies the per-IP and
// per-address throttles (counted whether or not the address has an
// account; a request over them is dropped silently) and enqueues one job
// for the request. It never looks the address up.
func (s *Service) enqueueEmailRequest(ctx context.Context, request, email string, m httpapi.Meta) error {
	email, err := ValidateEmail("email", email)
	if err != nil {
		return err
	}
	// A silent rule of the rate-limit policy refused it: dropped alike.
	if httpapi.Suppressed(ctx) {
		return nil
	}
	if ok, err := s.allowEmail(ctx, NormalizeEmail(email), m); err != nil || !ok {
		return err
	}
	sealed, err := s.Keys.Seal([]byte(email), emailRequestAD(request))
	if err != nil {
		return fmt.Errorf("seal the address of an email request: %w", err)
	}
	args := EmailRequestArgs{Request: request, SealedEmail: sealed, IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, RequestedAt: s.now()}
	return s.Store.InTx(ctx, func(tx Tx) error {
		_, err := s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
}

// EmailRequestWorker works EmailRequestArgs jobs.
type EmailRequestWorker struct {
	river.WorkerDefaults[EmailRequestArgs]
	service *Service
}

// NewEmailRequestWorker returns the worker of s's email requests.
func NewEmailRequestWorker(s *Service) *EmailRequestWorker { return &EmailRequestWorker{service: s} }

// Work implements river.Worker.
func (w *EmailRequestWorker) Work(ctx context.Context, job *river.Job[EmailRequestArgs]) error {
	return w.service.HandleEmailRequest(ctx, job.Args)
}

// HandleEmailRequest does what a forgot-password or resend-verification
// request asked for: it sends a reset link to an existing, enabled
// account, or a new verification link to an unverified one, and does
// nothing for anything else (a service account included). A job that can never succeed (an unknown
// request, an address that does not open) is cancelled.
func (s *Service) HandleEmailRequest(ctx context.Context, a EmailRequestArgs) error {
	if a.Request != RequestPasswordReset && a.Request != RequestVerification {
		return river.JobCancel(fmt.Errorf("user: unknown email request %q", a.Request))
	}
	lifetime := s.Config.ResetTTL
	if a.Request == RequestVerification {
		lifetime = s.Config.VerificationTTL
	}
	if !a.RequestedAt.IsZero() && s.now().Sub(a.RequestedAt) > lifetime {
		s.Log.InfoContext(ctx, "dropped an email request older than its link's lifetime", "request", a.Request, "requested_at", a.RequestedAt)
		return nil
	}
	email, err := s.Keys.Open(a.SealedEmail, emailRequestAD(a.Request))
	if err != nil {
		return river.JobCancel(fmt.Errorf("user: open the sealed address of an email request: %w", err))
	}
	u, err := s.Store.GetUserByEmail(ctx, NormalizeEmail(string(email)))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.Kind == store.UserKindService {
		// A service account's address is synthetic and it never signs in
		// with a password: answered like an unknown address.
		return nil
	}
	m := httpapi.Meta{IP: a.IP, UserAgent: a.UserAgent, RequestID: a.RequestID}
	if a.Request == RequestVerification {
		if !u.EmailVerifiedAt.IsZero() {
			return nil
		}
		return s.sendVerification(ctx, u, m)
	}
	if u.Status == store.UserDisabled {
		return nil
	}
	return s.sendReset(ctx, u, m)
}

// sendVerification issues a verification token (superseding older ones)
// and emails its link.
func (s *Service) sendVerification(ctx context.Context, u store.User, m httpapi.Meta) error {
	token, err := secret.NewToken(32)
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := s.issueToken(ctx, tx, u, store.PurposeVerifyEmail, u.Email, token, s.Config.VerificationTTL); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, u.ID, "user.verification_resent", nil); err != nil {
			return err
		}
		return s.sendMail(ctx, tx, mail.VerifyEmail, u.Email, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.VerificationTTL}, s.link("/verify-email", token))
	})
}

// sendReset issues a password reset token (superseding older ones) and
// emails its link.
func (s *Service) sendReset(ctx context.Context, u store.User, m httpapi.Meta) error {
	token, err := secret.NewToken(32)
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := s.issueToken(ctx, tx, u, store.PurposePasswordReset, u.Email, token, s.Config.ResetTTL); err != nil {
			return err
		}
		if err := s.audit(ctx, tx, m, u.ID, "user.password_reset_requested", nil); err != nil {
			return err
		}
		return s.sendMail(ctx, tx, mail.PasswordReset, u.Email, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.ResetTTL, IP: m.IP, UserAgent: m.UserAgent, Time: s.now()}, s.link("/reset-password", token))
	})
}
