package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mileusna/useragent"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
	"github.com/gatehouse/gatehouse/internal/user"
)

func lockedProblem(retry time.Duration, code, detail string) error {
	p := httpapi.NewProblem(http.StatusTooManyRequests, code, detail)
	p.RetryAfter = int((retry + time.Second - 1) / time.Second)
	return p
}

// Login checks a password and starts a session. Wrong email and wrong
// password fail alike and take alike (a dummy hash is verified for unknown
// addresses).
func (s *Service) Login(ctx context.Context, email, pw string, m httpapi.Meta) (Result, error) {
	if strings.TrimSpace(email) == "" || pw == "" {
		var fe []httpapi.FieldError
		if strings.TrimSpace(email) == "" {
			fe = append(fe, httpapi.FieldError{Field: "email", Rule: "required", Message: "The email address is required."})
		}
		if pw == "" {
			fe = append(fe, httpapi.FieldError{Field: "password", Rule: "required", Message: "The password is required."})
		}
		return Result{}, httpapi.Validation(fe...)
	}
	lk := s.guard()
	// The IP's attempt is counted before anything else, atomically, so
	// parallel attempts cannot all pass a check made before any of them
	// counted; a blocked IP is refused before the subject counts anything.
	if d, err := lk.ipAttempt(ctx, m.IP); err != nil {
		return Result{}, err
	} else if d > 0 {
		return Result{}, lockedProblem(d, "too_many_attempts", "Too many failed sign-ins from this address; try again later.")
	}
	res, wrongPassword, err := s.login(ctx, lk, email, pw, m)
	if !wrongPassword {
		// Only a wrong password keeps the IP's unit. The refund is made
		// even when the client has gone (its context cancelled).
		if rerr := lk.ipRefund(context.WithoutCancel(ctx), m.IP); rerr != nil {
			s.Log.ErrorContext(ctx, "could not refund a sign-in attempt to its IP", "error", rerr.Error())
		}
	}
	return res, err
}

// login is Login after the IP's attempt was counted. wrongPassword tells
// whether the attempt ended in a wrong password (or an unknown address).
func (s *Service) login(ctx context.Context, lk *guard, email, pw string, m httpapi.Meta) (res Result, wrongPassword bool, err error) {
	// The lock is kept per email address, whether or not an account has
	// it: an address without an account locks exactly like one with an
	// account, so account_locked tells nothing about which addresses exist.
	normalized := user.NormalizeEmail(email)
	subject := s.lockSubject(normalized)
	// One atomic step refuses a locked subject without counting the
	// attempt, or counts it (see lockout.Counter.Attempt); beyond
	// Threshold attempts in flight, it waits for them to settle. The
	// attempt then ends in exactly one of Failed, Succeeded or release.
	n, d, err := lk.Attempt(ctx, subject)
	if err != nil {
		return Result{}, false, err
	}
	if d > 0 {
		return Result{}, false, lockedProblem(d, "account_locked", "Too many failed sign-ins; the account is locked for a while.")
	}
	u, err := s.Store.GetUserByEmail(ctx, normalized)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.release(ctx, lk, subject)
		return Result{}, false, err
	}
	var (
		ok, rehash bool
		fetched    func() riskInputs
	)
	if err == nil {
		// What scoring needs is read while the password is hashed.
		fetched = s.fetchRisk(ctx, u.ID, m.IP, normalized)
		ok, rehash, err = s.Hasher.Verify(ctx, pw, u.PasswordHash)
		if password.Unusable(err) {
			// No password (a social or magic-link account) or a hash that
			// can never match: Verify returned without hashing anything, so
			// hash the dummy, or the time taken would tell these accounts
			// apart.
			s.Hasher.DummyVerify(ctx, pw)
		} else if err != nil {
			s.release(ctx, lk, subject)
			return Result{}, false, err
		}
	} else {
		s.Hasher.DummyVerify(ctx, pw)
	}
	if !ok {
		s.failedSignIn(ctx, normalized, m.IP)
		s.publishFailure(ctx, u.ID, subject, m)
		d, err := lk.Failed(ctx, subject, n)
		if err != nil {
			return Result{}, true, err
		}
		if d > 0 && u.ID != "" {
			s.onLocked(ctx, u, d, m)
		}
		return Result{}, true, ErrInvalidCredentials
	}
	if err := lk.Succeeded(ctx, subject); err != nil {
		return Result{}, false, err
	}
	switch {
	case u.Status == store.UserDisabled:
		return Result{}, false, ErrAccountDisabled
	case !u.PasswordResetRequiredAt.IsZero():
		// Only now that the password was verified: a sign-in was
		// disowned (NotMe), and the password is presumed known to others.
		return Result{}, false, ErrPasswordResetRequired
	case u.EmailVerifiedAt.IsZero() && s.Config.RequireVerifiedEmail:
		return Result{}, false, ErrEmailNotVerified
	}
	var newHash string
	if rehash {
		if newHash, err = s.Hasher.Hash(ctx, pw); err != nil {
			return Result{}, false, err
		}
	}
	res, err = s.scoredStart(ctx, u, normalized, []string{"pwd"}, newHash, m, fetched)
	return res, false, err
}

// SignInWithPasskey starts the session of u after a passkey assertion,
// under the same lockout as a password: a blocked address or locked
// account is refused before check runs; check verifies the assertion, and
// a false (a wrong signature, a replay, a refused credential) is a failed
// sign-in of the account and the address, counted and published like a
// wrong password (ErrInvalidCredentials is for the caller to map). A
// verified one is scored and started like SignInWith with the amr check
// returned.
func (s *Service) SignInWithPasskey(ctx context.Context, u store.User, check func() (amr []string, ok bool, err error), m httpapi.Meta) (Result, error) {
	lk := s.guard()
	if d, err := lk.ipAttempt(ctx, m.IP); err != nil {
		return Result{}, err
	} else if d > 0 {
		return Result{}, lockedProblem(d, "too_many_attempts", "Too many failed sign-ins from this address; try again later.")
	}
	wrong := false
	defer func() {
		if !wrong {
			if rerr := lk.ipRefund(context.WithoutCancel(ctx), m.IP); rerr != nil {
				s.Log.ErrorContext(ctx, "could not refund a sign-in attempt to its IP", "error", rerr.Error())
			}
		}
	}()
	subject := s.lockSubject(u.EmailNormalized)
	n, d, err := lk.Attempt(ctx, subject)
	if err != nil {
		return Result{}, err
	}
	if d > 0 {
		return Result{}, lockedProblem(d, "account_locked", "Too many failed sign-ins; the account is locked for a while.")
	}
	amr, ok, err := check()
	if err != nil {
		s.release(ctx, lk, subject)
		return Result{}, err
	}
	if !ok {
		wrong = true
		s.failedSignIn(ctx, u.EmailNormalized, m.IP)
		s.publishFailure(ctx, u.ID, subject, m)
		d, err := lk.Failed(ctx, subject, n)
		if err != nil {
			return Result{}, err
		}
		if d > 0 {
			s.onLocked(ctx, u, d, m)
		}
		return Result{}, ErrInvalidCredentials
	}
	if err := lk.Succeeded(ctx, subject); err != nil {
		return Result{}, err
	}
	switch {
	case u.Status == store.UserDisabled:
		return Result{}, ErrAccountDisabled
	case !u.PasswordResetRequiredAt.IsZero():
		// A disowned sign-in (NotMe) ends every session and asks for a
		// new password; a passkey is not phishable, but the account's
		// owner asked for the reset, and it comes first.
		return Result{}, ErrPasswordResetRequired
	case u.EmailVerifiedAt.IsZero() && s.Config.RequireVerifiedEmail:
		return Result{}, ErrEmailNotVerified
	}
	return s.scoredStart(ctx, u, u.EmailNormalized, amr, "", m, nil)
}

// SignInWith starts the session of u, proven by amr other than with a
// password (an external identity, a magic link): scored like a password
// sign-in, then refused, asked for a second factor (always asked when MFA
// applies) or started. The user must be active (the caller checked).
func (s *Service) SignInWith(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (Result, error) {
	return s.scoredStart(ctx, u, u.EmailNormalized, amr, "", m, nil)
}

// scoredStart scores the sign-in of u after its first factor (amr; with
// "pwd", u.PasswordHash is the hash the password was checked against and
// newHash a rehash to store), then refuses it (ErrRiskBlocked), asks a
// second factor (a step-up, or MFA that applies) or starts its session.
// account is the login name the failure counters know; fetched, when
// set, what fetchRisk read already. Without a second factor service a
// step-up is refused.
func (s *Service) scoredStart(ctx context.Context, u store.User, account string, amr []string, newHash string, m httpapi.Meta, fetched func() riskInputs) (Result, error) {
	ra, err := s.assess(ctx, u, account, m, fetched)
	if err != nil {
		return Result{}, err
	}
	// A first step of two factors (a passkey that verified the user) is
	// the step-up a risky sign-in would ask for.
	stepUp := ra != nil && ra.Decision == risk.StepUp && !slices.Contains(amr, "mfa")
	if ra != nil && (ra.Decision == risk.Block || stepUp && s.MFA == nil) {
		if err := s.blocked(ctx, u, ra, m); err != nil {
			return Result{}, err
		}
		return Result{}, ErrRiskBlocked
	}
	if s.MFA != nil {
		checked := u
		if newHash != "" {
			checked.PasswordHash = newHash // what the pending login will find
		}
		var ch *Challenge
		if ra != nil {
			ch, err = s.MFA.BeginScored(ctx, checked, amr, m, ra.sessionRisk(), stepUp)
		} else {
			ch, err = s.MFA.Begin(ctx, checked, amr, m)
		}
		if err != nil {
			return Result{}, err
		}
		if ch == nil && stepUp {
			// No second factor could be asked: refuse rather than allow.
			if err := s.blocked(ctx, u, ra, m); err != nil {
				return Result{}, err
			}
			return Result{}, ErrRiskBlocked
		}
		if ch != nil {
			if stepUp {
				if err := s.steppedUp(ctx, u, ra, m); err != nil {
					return Result{}, err
				}
			}
			if newHash != "" {
				if err := s.saveHash(ctx, u.ID, newHash); err != nil {
					return Result{}, err
				}
			}
			return Result{Challenge: ch, User: u}, nil
		}
	}
	checkedHash := ""
	if slices.Contains(amr, "pwd") {
		checkedHash = u.PasswordHash
	}
	var learned *store.RiskProfile
	if ra != nil {
		learned = s.learned(ctx, u.ID, ra.profile, risk.SignIn{At: ra.at, Device: ra.device, Network: ra.network})
	}
	return s.start(ctx, u, newHash, checkedHash, amr, m, ra.sessionRisk(), learned)
}

// saveHash stores an upgraded password hash.
func (s *Service) saveHash(ctx context.Context, userID, hash string) error {
	return s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		u.PasswordHash = hash
		_, err = tx.UpdateUser(ctx, u)
		return err
	})
}

// Complete starts the session of a login whose every step passed (the
// password and, through the MFA service, the second factor); amr lists
// the methods used. passwordStamp is the PasswordStamp of the hash the
// login's password was checked against, empty for a login without one: if
// the password changed since, the login fails with ErrInvalidCredentials.
// r is the first step's risk assessment (nil when it was not scored): the
// session keeps it, and the user's risk profile learns the sign-in.
func (s *Service) Complete(ctx context.Context, userID, passwordStamp string, amr []string, m httpapi.Meta, r *store.SessionRisk) (Result, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return Result{}, err
	}
	var checked string
	if passwordStamp != "" {
		if subtle.ConstantTimeCompare([]byte(PasswordStamp(u.PasswordHash)), []byte(passwordStamp)) != 1 {
			return Result{}, ErrInvalidCredentials
		}
		// A sign-in disowned while this one waited for its second factor.
		if !u.PasswordResetRequiredAt.IsZero() {
			return Result{}, ErrPasswordResetRequired
		}
		checked = u.PasswordHash
	}
	switch {
	case u.Status == store.UserDisabled:
		return Result{}, ErrAccountDisabled
	case u.EmailVerifiedAt.IsZero() && s.Config.RequireVerifiedEmail:
		return Result{}, ErrEmailNotVerified
	}
	var learned *store.RiskProfile
	if r != nil && s.Risk != nil {
		learned = s.learned(ctx, u.ID, nil, risk.SignIn{At: s.now(), Device: Fingerprint(m.DeviceID, m.UserAgent), Network: s.network(m.IP)})
	}
	return s.start(ctx, u, "", checked, amr, m, r, learned)
}

// Reauthenticated issues a fresh access token for the caller's session
// with auth_time now, after they proved themselves again (password or a
// second factor), for operations that need a recent authentication.
func (s *Service) Reauthenticated(ctx context.Context, userID, sessionID string, amr []string) (string, int, error) {
	sess, err := s.Store.GetSession(ctx, sessionID)
	if err != nil {
		return "", 0, err
	}
	now := s.now()
	if sess.UserID != userID || !sess.RevokedAt.IsZero() || !sess.ExpiresAt.After(now) {
		return "", 0, ErrInvalidGrant
	}
	at, exp, err := s.Tokens.Issue(ctx, token.AccessClaims{
		Subject: userID, ClientID: cmp.Or(sess.ClientID, FirstPartyClientID), SessionID: sess.ID, AuthTime: now, AMR: amr,
		Audience: sess.Audience, Scope: sessionScope(sess),
	})
	if err != nil {
		return "", 0, err
	}
	return at, int(exp.Sub(now).Round(time.Second) / time.Second), nil
}

// onLocked records and announces a lockout; failures to do so are logged,
// the lock itself stands.
func (s *Service) onLocked(ctx context.Context, u store.User, d time.Duration, m httpapi.Meta) {
	err := s.Store.InTx(ctx, func(tx Tx) error {
		return RecordLock(ctx, tx, s.Jobs, s.Keys, u, d, m, "security.account_locked", s.now())
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record the account lockout", "user_id", u.ID, "error", err.Error())
	}
}

// RecordLock appends the audit event action for a lock of d on u's sign-in
// (a password or a second factor) and queues the account-locked email, in
// the transaction tx.
func RecordLock(ctx context.Context, tx AuditTx, jobs JobInserter, keys *secret.Keyring, u store.User, d time.Duration, m httpapi.Meta, action string, now time.Time) error {
	if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, SubjectID: u.ID, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
		Data: map[string]any{"lock_seconds": int(d / time.Second)},
	}); err != nil {
		return err
	}
	args, err := mail.NewSendArgs(keys, mail.AccountLocked, u.Email, mail.Data{RecipientName: u.Name, UnlockAt: now.Add(d), ExpiresIn: d, IP: m.IP, UserAgent: m.UserAgent, Time: now}, "")
	if err != nil {
		return err
	}
	if _, err = jobs.InsertTx(ctx, tx.DriverTx(), args, nil); err != nil {
		return err
	}
	return tx.Publish(ctx, event.AccountLocked{UserID: u.ID, Action: action, Lock: d, Until: now.Add(d), Meta: m})
}

// Fingerprint binds a session to a device: a hash of the client's device_id
// and its user-agent family (browser and OS names, not versions, so an
// update does not break the binding).
func Fingerprint(deviceID, userAgent string) string {
	ua := useragent.Parse(userAgent)
	h := sha256.Sum256([]byte("gatehouse/device\x00" + deviceID + "\x00" + ua.Name + "\x00" + ua.OS))
	return hex.EncodeToString(h[:])
}

func deviceType(ua useragent.UserAgent) string {
	switch {
	case ua.Bot:
		return "bot"
	case ua.Tablet:
		return "tablet"
	case ua.Mobile:
		return "mobile"
	case ua.Desktop:
		return "desktop"
	}
	return "unknown"
}

// start creates the session, its first refresh token and an access token.
// start records the sign-in of u. newHash, when set, replaces the user's
// password hash; checkedHash, when set, is the hash the password was
// checked against, and a user who no longer has it (the password changed
// meanwhile), or who was deleted meanwhile, is refused with
// ErrInvalidCredentials. r, when set, is the sign-in's risk assessment.
//
// learned, when set, is the user's risk profile after this sign-in,
// written with it.
func (s *Service) start(ctx context.Context, u store.User, newHash, checkedHash string, amr []string, m httpapi.Meta, r *store.SessionRisk, learned *store.RiskProfile) (Result, error) {
	if u.Kind == store.UserKindService {
		// A service account authenticates with its API keys only; no
		// sign-in path may start a session for it.
		return Result{}, ErrInvalidCredentials
	}
	now := s.now()
	raw, err := secret.NewToken(32)
	if err != nil {
		return Result{}, err
	}
	ua := useragent.Parse(m.UserAgent)
	sess := store.Session{
		UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.Config.RefreshTTL),
		IP: m.IP, UserAgent: m.UserAgent, Browser: ua.Name, OS: ua.OS, DeviceType: deviceType(ua),
		AMR: amr, AuthTime: now, Audience: m.Audience, Scope: cmp.Or(m.Scope, strings.Join(apis.UserScopes, " ")),
		Risk: r,
	}
	if s.Locate != nil {
		loc := s.Locate(m.IP)
		sess.Country, sess.City, sess.ASN = loc.Country, loc.City, loc.ASN
	}
	if s.Config.BindDevice {
		sess.DeviceFingerprint = Fingerprint(m.DeviceID, m.UserAgent)
	}
	// A sign-in through a registered public client binds the session (and
	// its refresh tokens) to that client: only it may refresh them.
	sess.ClientID = m.ClientID
	first := store.RefreshToken{
		UserID: u.ID, ClientID: m.ClientID, Scope: sess.Scope, TokenHash: secret.HashToken(raw), CreatedAt: now, ExpiresAt: sess.ExpiresAt,
	}
	if s.Config.IdleTimeout > 0 {
		first.IdleExpiresAt = minTime(now.Add(s.Config.IdleTimeout), sess.ExpiresAt)
	}
	in := store.SignIn{
		Session: sess, First: first, PasswordHash: newHash, CheckedPasswordHash: checkedHash, RiskProfile: learned,
		Event: store.AuditEvent{
			OccurredAt: now, ActorID: u.ID, SubjectID: u.ID, Action: "user.logged_in",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"amr": amr, "rehashed": newHash != ""},
		},
	}
	// The activity trail shows where the sign-in came from and its risk.
	if sess.Country != "" || sess.City != "" {
		in.Event.Data["location"] = map[string]any{"country": sess.Country, "city": sess.City}
	}
	if sess.ASN != 0 {
		in.Event.Data["asn"] = sess.ASN
	}
	if r != nil {
		reasons := r.Reasons
		if reasons == nil {
			reasons = []string{}
		}
		in.Event.Data["risk"] = map[string]any{"score": r.Score, "reasons": reasons}
	}
	// A sign-in from a new device or country asks the user "was this
	// you?", with a "this wasn't me" link, in the session's transaction.
	var notMe string
	if askWasThisYou(r) && s.Jobs != nil && s.Config.AppURL != "" {
		if notMe, err = secret.NewToken(32); err != nil {
			return Result{}, err
		}
	}
	startTx := func(tx Tx) error {
		if sess, u, err = tx.StartSession(ctx, in); err != nil {
			return err
		}
		if notMe != "" {
			if err := s.wasThisYou(ctx, tx, u, sess, notMe); err != nil {
				return err
			}
		}
		return tx.Publish(ctx, event.SessionStarted{Session: sess, Meta: m})
	}
	var ended []string
	if s.Config.MaxSessions <= 0 && notMe == "" && !s.Store.Listens(event.SessionStarted{}) {
		// The common case: one step, which the PostgreSQL store takes in
		// two round trips.
		sess, u, err = s.Store.StartSession(ctx, in)
	} else {
		err = s.Store.InTx(ctx, func(tx Tx) error {
			if s.Config.MaxSessions <= 0 {
				return startTx(tx)
			}
			// Lock the user first, so concurrent logins count in turn.
			if _, err := tx.GetUserForUpdate(ctx, u.ID); err != nil {
				return err
			}
			live, err := tx.ListUserSessions(ctx, u.ID, now)
			if err != nil {
				return err
			}
			if len(live) >= s.Config.MaxSessions {
				if s.Config.RefuseOverLimit {
					return ErrTooManySessions
				}
				// Newest first: end the oldest ones beyond the limit.
				for _, old := range live[s.Config.MaxSessions-1:] {
					if _, err := tx.RevokeSession(ctx, old.ID, "session_limit", now); err != nil {
						return err
					}
					ended = append(ended, old.ID)
				}
				if err := tx.Publish(ctx, event.SessionsRevoked{UserID: u.ID, SessionIDs: ended, Reason: "session_limit", Meta: m}); err != nil {
					return err
				}
			}
			return startTx(tx)
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, ErrInvalidCredentials
	}
	if err != nil {
		return Result{}, err
	}
	for _, id := range ended {
		s.deny(ctx, id)
	}
	return s.issue(ctx, u, sess, raw, nil, "")
}

// sessionScope is the scope a session was granted: every user scope for
// a session started before grants were recorded.
func sessionScope(sess store.Session) string {
	return cmp.Or(sess.Scope, strings.Join(apis.UserScopes, " "))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// issue signs an access token for the session, for the session's client
// (the first-party one when it has none), with the session's audience and
// scope unless audience or scope narrows them.
func (s *Service) issue(ctx context.Context, u store.User, sess store.Session, refresh string, audience []string, scope string) (Result, error) {
	if audience == nil {
		audience = sess.Audience
	}
	at, exp, err := s.Tokens.Issue(ctx, token.AccessClaims{
		Subject: u.ID, ClientID: cmp.Or(sess.ClientID, FirstPartyClientID), SessionID: sess.ID, AuthTime: sess.AuthTime, AMR: sess.AMR,
		Audience: audience, Scope: cmp.Or(scope, sessionScope(sess)),
	})
	if err != nil {
		return Result{}, err
	}
	return Result{
		AccessToken: at, ExpiresIn: int(exp.Sub(s.now()).Round(time.Second) / time.Second),
		RefreshToken: refresh, Session: sess, User: u,
	}, nil
}
