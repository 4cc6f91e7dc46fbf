package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/passkey"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
)

// registerSMS adds the text message worker: Twilio when configured, else
// the outbox directory inside the data dir.
func registerSMS(workers *river.Workers, cfg *config.Config, keys *secret.Keyring, log *slog.Logger, onFailure func(context.Context, sms.SendArgs, error)) error {
	var sc sms.Config
	if cfg.SMS.TwilioAccountSID != "" {
		sc = sms.Config{
			AccountSID: cfg.SMS.TwilioAccountSID, AuthToken: cfg.SMS.TwilioAuthToken, From: cfg.SMS.TwilioFrom,
			MessagingServiceSID: cfg.SMS.TwilioMessagingServiceSID, BaseURL: cfg.SMS.TwilioBaseURL,
			StatusCallback: strings.TrimRight(cfg.Server.Issuer, "/") + sms.StatusPath,
		}
	}
	provider, err := sms.NewProviderFromConfig(sc, outboxDir(cfg), log)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_TWILIO_ACCOUNT_SID: %w", err)
	}
	w, err := sms.NewWorker(provider, keys, log, sms.Hooks{OnFailure: onFailure})
	if err != nil {
		return err
	}
	return sms.Register(workers, w)
}

// smsFailures is the SMS worker's failure hook: it publishes
// event.SMSDeliveryFailed in a transaction of its own (the MFA service
// reacts to it; see newServices).
func smsFailures(st store.Store, bus *event.Bus, log *slog.Logger) func(context.Context, sms.SendArgs, error) {
	return func(ctx context.Context, a sms.SendArgs, cause error) {
		if err := bus.PublishInTx(ctx, st, event.SMSDeliveryFailed{Args: a, Cause: cause}); err != nil {
			log.ErrorContext(ctx, "sms failure hook failed", "error", err.Error())
		}
	}
}

// smsStatusRecorder records Twilio delivery callbacks in the audit log.
func smsStatusRecorder(st store.Store) func(context.Context, sms.Status) error {
	return func(ctx context.Context, s sms.Status) error {
		return st.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: time.Now().UTC(), Action: "sms.delivery_status",
			Data: map[string]any{"message_sid": s.MessageSID, "status": s.Status, "error_code": s.ErrorCode, "to": sms.Mask(s.To)},
		})
	}
}

// newMFAService builds multi-factor authentication, which finishes logins
// through sessions.
func newMFAService(d *deps, sessions *session.Service, passkeys mfa.Passkeys) (*mfa.Service, error) {
	codes, err := mfa.NewCodes(d.keys)
	if err != nil {
		return nil, err
	}
	codesAllowed, regions, err := sms.ParseAllowlist(strings.Join(d.cfg.SMS.AllowedCountries, ","))
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_SMS_ALLOWED_COUNTRIES: %w", err)
	}
	perHour := func(n int) ratelimit.Limit { return ratelimit.Limit{Rate: n, Burst: n, Period: time.Hour} }
	guard := &sms.Guard{
		Limiter: d.state.limiter, Keys: d.keys, PerUser: perHour(d.cfg.SMS.LimitPerUser), PerPhone: perHour(d.cfg.SMS.LimitPerPhone),
		DefaultPerCountry: perHour(d.cfg.SMS.LimitPerCountry), AllowedCountries: codesAllowed, AllowedRegions: regions,
	}
	if err := guard.Validate(); err != nil {
		return nil, fmt.Errorf("SMS limits: %w", err)
	}
	c := mfa.DefaultConfig(d.cfg.Mail.ProductName)
	c.Policy = mfa.Policy{Required: d.cfg.MFA.Required, Methods: d.cfg.MFA.Methods, Grace: d.cfg.MFA.EnrollmentGrace}
	c.Lockout.Threshold, c.Lockout.BaseLock, c.Lockout.MaxLock = d.cfg.MFA.LockoutThreshold, d.cfg.MFA.LockoutBase, d.cfg.MFA.LockoutMax
	if d.cfg.Env == config.EnvProduction && d.cfg.SMS.TwilioAccountSID == "" {
		// Without Twilio, codes would only reach the outbox on disk.
		c.Policy.Methods = withoutSMS(c.Policy.Methods)
		if len(c.Policy.Methods) == 0 {
			// An empty list would mean every method.
			return nil, fmt.Errorf("GATEHOUSE_MFA_METHODS allows only sms, which is off without GATEHOUSE_TWILIO_ACCOUNT_SID")
		}
		d.log.Warn("SMS codes are off: set GATEHOUSE_TWILIO_ACCOUNT_SID to offer them")
	}
	return mfa.New(mfa.Deps{
		Store: mfaStore(d.db.store, d.bus), Keys: d.keys, Codes: codes, KV: d.state.kv, Limiter: d.state.limiter, Jobs: d.queue,
		SMSGuard: guard, Sessions: sessions, Passkeys: passkeys, Now: d.now, Log: d.log, Config: c,
	})
}

// newPasskeyService builds the passkey relying party from the
// GATEHOUSE_WEBAUTHN_* settings (the issuer's host and origin by default).
// An issuer whose host is an IP address gives no relying party ID (WebAuthn
// takes a domain only): passkeys are then off (nil), with a warning, and
// the rest of the server runs.
func newPasskeyService(d *deps, sessions *session.Service) (*passkey.Service, error) {
	rpID, origins := d.cfg.WebAuthnRP()
	if net.ParseIP(strings.Trim(rpID, "[]")) != nil {
		d.log.Warn("passkeys are off: the issuer's host is an IP address, and a WebAuthn relying party ID must be a domain; set GATEHOUSE_WEBAUTHN_RP_ID (and GATEHOUSE_WEBAUTHN_ORIGINS) to turn them on", "rp_id", rpID)
		return nil, nil
	}
	var allowed []uuid.UUID
	for _, a := range d.cfg.WebAuthn.AllowedAAGUIDs {
		id, err := uuid.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_WEBAUTHN_ALLOWED_AAGUIDS: %w", err)
		}
		allowed = append(allowed, id)
	}
	return passkey.New(passkey.Deps{
		Config: passkey.Config{
			RPID: rpID, RPName: d.cfg.WebAuthn.RPName, Origins: origins,
			UserVerification: d.cfg.WebAuthn.UserVerification, Attestation: d.cfg.WebAuthn.Attestation,
			AllowedAAGUIDs: allowed, ReauthWindow: mfa.DefaultConfig("").ReauthWindow,
		},
		Store: event.Narrow(d.db.store, d.bus, func(tx event.Tx) passkey.Tx { return tx }),
		KV:    d.state.kv, Sessions: sessions, Keys: d.keys, Jobs: d.queue, Now: d.now, Log: d.log,
	})
}

func withoutSMS(methods []string) []string {
	if len(methods) == 0 {
		methods = []string{mfa.MethodTOTP, mfa.MethodEmail, mfa.MethodBackup}
	}
	return slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == mfa.MethodSMS })
}
