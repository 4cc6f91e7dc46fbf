package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Challenge sends a code for a login's sms or email step. It takes its
// turn with the verifications of the token (see exclusively), which hold
// the login while they check a code.
//
// For method webauthn it sends nothing: it returns the assertion options
// for navigator.credentials.get over the user's passkeys, bound to this
// login (the answer goes to Verify).
func (s *Service) Challenge(ctx context.Context, tok, method string, m httpapi.Meta) (ttl time.Duration, options json.RawMessage, err error) {
	if !wellFormed(tok) {
		return 0, nil, ErrInvalidMFAToken
	}
	err = s.exclusively(ctx, tokenRef(tok), func() error {
		ttl, options, err = s.challenge(ctx, tok, method, m)
		return err
	})
	return ttl, options, err
}

// passkeyBind is what a login's passkey assertion is bound to.
func passkeyBind(tok string) string { return "mfa:" + tokenRef(tok) }

func (s *Service) challenge(ctx context.Context, tok, method string, m httpapi.Meta) (time.Duration, json.RawMessage, error) {
	p, err := s.lookup(ctx, tok, m, false)
	if err != nil {
		return 0, nil, err
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return 0, nil, err
	}
	f, err := s.factors(ctx, u)
	if err != nil {
		return 0, nil, err
	}
	methods := f.methodsFor(p)
	if method == MethodWebAuthn && slices.Contains(methods, method) && s.Passkeys != nil {
		opts, err := s.Passkeys.AssertionOptions(ctx, u, f.passkeysOf(f.active), passkeyBind(tok))
		return passkeyTTL, opts, err
	}
	ttl, err := s.sendChallenge(ctx, tok, method, m, p, u, f, methods)
	return ttl, nil, err
}

// passkeyTTL is how long a passkey assertion can be answered
// (passkey.CeremonyTTL).
const passkeyTTL = 5 * time.Minute

// sendChallenge sends the code of an sms or email step.
func (s *Service) sendChallenge(ctx context.Context, tok, method string, m httpapi.Meta, p pending, u store.User, f factorSet, methods []string) (time.Duration, error) {
	ref := tokenRef(tok)
	switch {
	case !slices.Contains(methods, method) && method == MethodEmail:
		ok, err := s.emailFallback(ctx, ref, p, f.pol, methods)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, ErrMethodUnavailable
		}
		return s.Config.CodeTTL, s.sendCode(ctx, u, fallbackDevice(u), m, "")
	case !slices.Contains(methods, method):
		return 0, ErrMethodUnavailable
	case method == MethodSMS:
		d, _ := pick(f.active, MethodSMS)
		err := s.sendCode(ctx, u, d, m, ref)
		if !cannotText(err) {
			return s.Config.CodeTTL, smsProblem(err, false)
		}
		// The number cannot get text messages at all: as good as a failed
		// delivery.
		if err := s.smsFailed(ctx, ref); err != nil {
			return 0, err
		}
		offer, ferr := s.emailFallback(ctx, ref, p, f.pol, methods)
		if ferr != nil {
			return 0, ferr
		}
		return 0, smsProblem(err, offer)
	case method == MethodEmail:
		d, ok := pick(f.active, MethodEmail)
		if !ok {
			// A step-up of a user without factors (see methodsFor).
			d = fallbackDevice(u)
		}
		return s.Config.CodeTTL, s.sendCode(ctx, u, d, m, "")
	}
	return 0, ErrMethodUnavailable
}

// fallbackDevice is where the email code that stands in for a failed text
// message goes: the account's address, under no device.
func fallbackDevice(u store.User) store.MFADevice {
	return store.MFADevice{UserID: u.ID, Type: MethodEmail, Email: u.Email}
}

// emailFallback reports whether the pending login p (whose token has ref)
// may use an email code in place of a text message. Issue 5 offers it when
// SMS delivery fails, and only then: a text message for this very sign-in
// failed (see smsFailed); SMS is one of the sign-in's methods and email,
// as a factor of its own, is not (else it needs no fallback); the policy
// allows email; and the first step of the sign-in did not prove the
// mailbox already (a magic link, amr "email"), for the same mailbox
// twice is one factor.
func (s *Service) emailFallback(ctx context.Context, ref string, p pending, pol Policy, methods []string) (bool, error) {
	if !slices.Contains(methods, MethodSMS) || slices.Contains(methods, MethodEmail) || !allowed(pol, MethodEmail) || slices.Contains(p.AMR, amrOf[MethodEmail]) {
		return false, nil
	}
	_, err := s.KV.Get(ctx, smsFailedKey(ref))
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// smsFailed records that a text message for the pending login with ref
// could not be sent. It lives no longer than the login can.
func (s *Service) smsFailed(ctx context.Context, ref string) error {
	return s.KV.Set(ctx, smsFailedKey(ref), []byte("1"), s.Config.TokenTTL)
}

// cannotText reports whether err is the SMS guard's refusal of the number
// itself (a country that is not enabled, a number that cannot get text
// messages). A rate limit is not: whoever knows the password could hit it
// on purpose to turn the SMS factor into an email one.
func cannotText(err error) bool {
	return errors.Is(err, sms.ErrCountryNotAllowed) || errors.Is(err, sms.ErrNotMobile)
}

// pick returns the user's default active device of a type, else the first.
func pick(active []store.MFADevice, typ string) (store.MFADevice, bool) {
	var first *store.MFADevice
	for i, d := range active {
		if d.Type != typ {
			continue
		}
		if d.IsDefault {
			return d, true
		}
		if first == nil {
			first = &active[i]
		}
	}
	if first == nil {
		return store.MFADevice{}, false
	}
	return *first, true
}

// sendCode makes a code for the device's channel and sends it by a durable
// job (the job holds the code sealed). ref, for a text message of a
// sign-in, is its pending login's tokenRef, handed back to SMSFailed. A
// refusal of the SMS guard is returned as it is (see smsProblem).
func (s *Service) sendCode(ctx context.Context, u store.User, d store.MFADevice, m httpapi.Meta, ref string) error {
	if err := s.throttle(ctx, "mfa:send:"+u.ID, s.Config.ResendLimit); err != nil {
		return err
	}
	if d.Type == MethodSMS {
		if err := s.SMSGuard.Check(ctx, u.ID, d.PhoneNumber); err != nil {
			return err
		}
	}
	code, err := otp.NumericCode(6)
	if err != nil {
		return err
	}
	now := s.now()
	return s.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.CreateMFACode(ctx, store.MFACode{
			UserID: u.ID, DeviceID: d.ID, Channel: d.Type, CodeHash: s.Codes.Hash("mfa-code", code),
			ExpiresAt: now.Add(s.Config.CodeTTL), CreatedAt: now,
		}); err != nil {
			return err
		}
		var args river.JobArgs
		if d.Type == MethodSMS {
			a, err := sms.NewSendArgs(s.Keys, d.PhoneNumber,
				fmt.Sprintf("%s code: %s. It expires in %d minutes. Never share it.", s.Config.Issuer, code, int(s.Config.CodeTTL/time.Minute)),
				u.ID, "mfa")
			if err != nil {
				return err
			}
			a.Ref = ref
			args = a
		} else {
			to := d.Email
			if to == "" {
				to = u.Email
			}
			a, err := mail.NewCodeArgs(s.Keys, mail.MFACode, to, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.CodeTTL, IP: m.IP, UserAgent: m.UserAgent, Time: now}, code)
			if err != nil {
				return err
			}
			args = a
		}
		_, err := s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
}

// smsProblem explains why an SMS cannot be sent (other errors pass
// unchanged), offering the email code when the sign-in may use it.
func smsProblem(err error, offerEmail bool) error {
	instead := "; use another method"
	if offerEmail {
		instead = "; use the email code instead"
	}
	var rl *sms.ErrRateLimited
	switch {
	case errors.As(err, &rl):
		p := httpapi.NewProblem(http.StatusTooManyRequests, "sms_rate_limited", "Too many text messages; try again later.")
		p.RetryAfter = max(1, int(rl.RetryAfter/time.Second))
		return p
	case errors.Is(err, sms.ErrCountryNotAllowed):
		return httpapi.NewProblem(http.StatusUnprocessableEntity, "sms_country_not_allowed", "Text messages cannot be sent to this country"+instead+".")
	case errors.Is(err, sms.ErrNotMobile):
		return httpapi.NewProblem(http.StatusUnprocessableEntity, "phone_not_mobile", "The phone number cannot receive text messages"+instead+".")
	}
	return err
}

// SMSFailed handles event.SMSDeliveryFailed in the transaction tx the
// SMS worker published it in. The failure is recorded in tx. Once that
// committed, a text message of a sign-in (args.Ref names its pending
// login) that could not be sent opens the email fallback for that
// sign-in, and the email code is sent at once when the sign-in may use it
// (see emailFallback). The fallback waits its turn with the sign-in's
// verifications and sends in a transaction of its own, so it runs after
// the commit rather than hold the transaction (SQLite's one writer) open;
// its failure is logged.
func (s *Service) SMSFailed(ctx context.Context, tx Tx, args sms.SendArgs, cause error) error {
	u, err := tx.GetUser(ctx, args.UserID)
	if err != nil {
		return fmt.Errorf("sms failure: user lookup: %w", err)
	}
	now := s.now()
	if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, SubjectID: u.ID, Action: "mfa.sms_failed",
		Data: map[string]any{"to": sms.Mask(args.To), "purpose": args.Purpose, "reason": cause.Error()},
	}); err != nil {
		return fmt.Errorf("sms failure: audit: %w", err)
	}
	if args.Purpose != "mfa" || args.Ref == "" {
		return nil // not a sign-in's code (an enrolment's, say): no fallback
	}
	tx.AfterCommit(func(ctx context.Context) { s.smsFallback(ctx, u, args) })
	return nil
}

// smsFallback opens the email fallback of the sign-in whose text message
// args could not be sent (see SMSFailed).
func (s *Service) smsFallback(ctx context.Context, u store.User, args sms.SendArgs) {
	// In its turn: a verification in progress holds the login (see spend).
	err := s.exclusively(ctx, args.Ref, func() error {
		b, err := s.KV.Get(ctx, pendingRefKey(args.Ref))
		if errors.Is(err, kv.ErrNotFound) {
			return nil // the sign-in is over
		}
		var p pending
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		if err == nil && p.UserID != u.ID {
			err = errors.New("the pending sign-in is another user's")
		}
		if err == nil {
			err = s.smsFailed(ctx, args.Ref)
		}
		var f factorSet
		if err == nil {
			f, err = s.factors(ctx, u)
		}
		offer := false
		if err == nil {
			offer, err = s.emailFallback(ctx, args.Ref, p, f.pol, f.methodsFor(p))
		}
		if err == nil && offer {
			err = s.sendCode(ctx, u, fallbackDevice(u), httpapi.Meta{}, "")
		}
		return err
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "sms failure hook: email fallback failed", "error", err.Error())
	}
}
