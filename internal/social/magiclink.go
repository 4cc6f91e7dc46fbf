package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// MagicLinkKind is the River kind of a magic-link request.
const MagicLinkKind = "social.magic_link"

// MagicLinkArgs is one magic-link request, worked by MagicLinkWorker.
//
// The request itself only checks the address's form, counts the
// throttles and enqueues this job, for every address alike: whether the
// address has an account is found out by the job, off the request path,
// so that neither the answer nor the work done before it (and so its
// time) depends on it.
type MagicLinkArgs struct {
	// SealedEmail is the normalised address, sealed with the keyring: the
	// job table does not keep addresses people typed in the clear.
	SealedEmail string    `json:"sealed_email"`
	RequestedAt time.Time `json:"requested_at"`
	IP          string    `json:"ip,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
	RequestID   string    `json:"request_id,omitempty"`
}

// Kind implements river.JobArgs.
func (MagicLinkArgs) Kind() string { return MagicLinkKind }

// InsertOpts implements river.JobArgsWithInsertOpts: the default queue
// and a few attempts (with River's backoff the last comes about six
// minutes after the first; a request worked later than the link's
// lifetime is dropped anyway).
func (MagicLinkArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// magicEmailAD binds a sealed address to magic-link requests.
var magicEmailAD = []byte("gatehouse/social.magic_link/email")

// magicGrant is what a magic link's token stands for.
type magicGrant struct {
	UserID string `json:"user_id"`
	// EmailHash is the pseudonym (secret.Keyring.Pseudonym) of the
	// normalised address the link was sent to: the link proves that
	// mailbox, and is void once the account has another. The ephemeral
	// store holds no address.
	EmailHash string `json:"email_hash,omitempty"`
	// Email is that address itself, in grants made before EmailHash.
	Email string `json:"email,omitempty"`
}

// magicEmailPurpose is the Pseudonym purpose of magicGrant.EmailHash.
const magicEmailPurpose = "magic-link-email"

// MagicLinkWorker works magic-link requests: for an address with an
// enabled account it stores a one-time token and enqueues the email that
// carries it; for any other address it does nothing.
type MagicLinkWorker struct {
	river.WorkerDefaults[MagicLinkArgs]
	service *Service
}

// NewMagicLinkWorker returns the worker of s's magic-link requests.
func NewMagicLinkWorker(s *Service) *MagicLinkWorker { return &MagicLinkWorker{service: s} }

// Work implements river.Worker.
func (w *MagicLinkWorker) Work(ctx context.Context, job *river.Job[MagicLinkArgs]) error {
	return w.service.sendMagicLink(ctx, job.Args)
}

// RequestMagicLink asks for a one-time sign-in link to be emailed to the
// address if it has an enabled account. It answers alike for any
// address, after the same work: the throttles (per address and per IP,
// counted whether or not the address has an account) and one job that
// does the rest (MagicLinkWorker).
func (s *Service) RequestMagicLink(ctx context.Context, email string, m httpapi.Meta) error {
	// Validated exactly as forgot-password validates it: the address goes
	// into a mail header, so a newline must never get through.
	email, err := user.ValidateEmail("email", email)
	if err != nil {
		return err
	}
	// A silent rule of the rate-limit policy refused it: dropped alike.
	if httpapi.Suppressed(ctx) {
		return nil
	}
	norm := user.NormalizeEmail(email)
	for _, k := range []struct {
		key string
		l   ratelimit.Limit
	}{{"magic:ip:" + httpapi.LimitKey(m.IP), s.Config.MagicLinkPerIP}, {"magic:addr:" + s.Keys.Pseudonym(secret.RateLimitPurpose, norm), s.Config.MagicLinkPerAddress}} {
		res, err := s.Limiter.AllowN(ctx, k.key, k.l, 1)
		if err != nil {
			return err
		}
		if res.Allowed == 0 {
			return nil // answered alike; nothing sent
		}
	}
	sealed, err := s.Keys.Seal([]byte(norm), magicEmailAD)
	if err != nil {
		return fmt.Errorf("social: seal a magic-link address: %w", err)
	}
	_, err = s.Jobs.Insert(ctx, MagicLinkArgs{
		SealedEmail: sealed, RequestedAt: s.now(), IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
	}, nil)
	return err
}

// sendMagicLink works one request.
func (s *Service) sendMagicLink(ctx context.Context, a MagicLinkArgs) error {
	raw, err := s.Keys.Open(a.SealedEmail, magicEmailAD)
	if err != nil {
		return river.JobCancel(fmt.Errorf("social: open the address of a magic-link request: %w", err))
	}
	now := s.now()
	if now.Sub(a.RequestedAt) >= s.Config.MagicLinkTTL {
		s.Log.WarnContext(ctx, "magic-link request dropped: worked later than a link lives", "request_id", a.RequestID)
		return nil
	}
	norm := string(raw)
	u, err := s.Store.GetUserByEmail(ctx, norm)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Status == store.UserDisabled || u.Kind == store.UserKindService)) {
		// A service account never signs in by email: its address is
		// synthetic. Like an unknown address, nothing is sent.
		return nil
	}
	if err != nil {
		return err
	}
	tok, err := secret.NewToken(32)
	if err != nil {
		return err
	}
	grant, _ := json.Marshal(magicGrant{UserID: u.ID, EmailHash: s.Keys.Pseudonym(magicEmailPurpose, u.EmailNormalized)})
	if err := s.KV.Set(ctx, magicKey(tok), grant, s.Config.MagicLinkTTL); err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{OccurredAt: now, SubjectID: u.ID, Action: "user.magic_link_requested", IP: a.IP, UserAgent: a.UserAgent, RequestID: a.RequestID}); err != nil {
			return err
		}
		args, err := mail.NewSendArgs(s.Keys, mail.MagicLink, u.Email, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.MagicLinkTTL, IP: a.IP, UserAgent: a.UserAgent, Time: a.RequestedAt}, s.Config.AppURL+"/magic-link?token="+tok)
		if err != nil {
			return err
		}
		_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
}

// VerifyMagicLink consumes a magic link token (once) and signs in; MFA
// still applies. Following the link proves the mailbox, so an unverified
// address becomes verified — and since anyone could have registered the
// account with that address, what was set up on it before is cleared
// (claimUnverified): the password, sessions, second factors, identities.
// A link sent to an address the account no longer has is void.
func (s *Service) VerifyMagicLink(ctx context.Context, tok string, sm httpapi.Meta) (session.Result, error) {
	userID, err := s.redeemMagicLink(ctx, tok, sm)
	if err != nil {
		return session.Result{}, err
	}
	return s.begin(ctx, userID, []string{"email"}, sm)
}

// MagicLinkCode consumes a magic link token as VerifyMagicLink does but,
// instead of starting the session, returns a one-time code for POST
// /v1/auth/oauth/exchange, the code a social sign-in's callback hands
// out: the landing page of the emailed link passes it to the application
// in a redirect, where tokens must not travel. The exchange starts the
// session, through the MFA step when it applies.
func (s *Service) MagicLinkCode(ctx context.Context, tok string, m httpapi.Meta) (string, error) {
	userID, err := s.redeemMagicLink(ctx, tok, m)
	if err != nil {
		return "", err
	}
	return s.newExchangeCode(ctx, pendingSignIn{UserID: userID, AMR: []string{"email"}})
}

// redeemMagicLink consumes a magic link token (once), claims the account
// if its address was unverified, and returns the user's ID.
func (s *Service) redeemMagicLink(ctx context.Context, tok string, sm httpapi.Meta) (string, error) {
	if tok == "" || len(tok) > 256 {
		return "", ErrInvalidCode
	}
	raw, err := s.take(ctx, magicKey(tok), ErrInvalidCode)
	if err != nil {
		return "", err
	}
	var g magicGrant
	if err := json.Unmarshal(raw, &g); err != nil {
		// A link made before grants carried the address: its value is
		// the user's ID.
		g = magicGrant{UserID: string(raw)}
	}
	m := sm
	err = s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, g.UserID)
		if err != nil {
			return err
		}
		if g.EmailHash != "" && !secret.Equal(g.EmailHash, s.Keys.Pseudonym(magicEmailPurpose, u.EmailNormalized)) {
			return ErrInvalidCode
		}
		if g.Email != "" && g.Email != u.EmailNormalized {
			return ErrInvalidCode
		}
		if !u.EmailVerifiedAt.IsZero() {
			return nil
		}
		_, err = s.claimUnverified(ctx, tx, u, viaMagicLink, "", m)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrInvalidCode
	}
	if err != nil {
		return "", err
	}
	return g.UserID, nil
}
