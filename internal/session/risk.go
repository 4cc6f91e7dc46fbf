package session

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ErrRiskBlocked is a password sign-in refused by its risk score. Its
// problem says nothing of the reasons: they would tell an attacker what to
// change.
var ErrRiskBlocked = errors.New("session: sign-in blocked by its risk score")

// RiskProfiles reads the users' behavioural models
// (store.RiskProfileStore); a sign-in writes its user's with the session
// (store.SignIn.RiskProfile).
type RiskProfiles interface {
	GetRiskProfile(ctx context.Context, userID string) (store.RiskProfile, error)
}

// scored is a sign-in's risk assessment and what it was made from, so that
// the profile learns the sign-in once it succeeds.
type scored struct {
	risk.Assessment
	at      time.Time
	device  string
	network risk.Network
	profile *risk.Profile // before this sign-in; never nil
}

// sessionRisk is the assessment as a session keeps it.
func (a *scored) sessionRisk() *store.SessionRisk {
	if a == nil {
		return nil
	}
	return &store.SessionRisk{Score: a.Score, Reasons: nilIfEmpty(a.Codes())}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// network describes the client address as network intelligence knows it
// (in memory, see Deps.Locate).
func (s *Service) network(ip string) risk.Network {
	n := risk.Network{}
	n.IP, _ = netip.ParseAddr(ip)
	if s.Locate != nil {
		loc := s.Locate(ip)
		n.Country, n.City, n.ASN = loc.Country, loc.City, uint(loc.ASN)
		n.Latitude, n.Longitude, n.HasLocation, n.Lists = loc.Latitude, loc.Longitude, loc.HasLocation, loc.Lists
	}
	return n
}

// profile reads the user's behavioural model: one database read. A user
// without one, or whose stored one cannot be read, starts afresh.
func (s *Service) profile(ctx context.Context, userID string) (*risk.Profile, error) {
	sp, err := s.RiskProfiles.GetRiskProfile(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return &risk.Profile{}, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := risk.DecodeProfile(sp.Profile)
	if err != nil {
		s.Log.ErrorContext(ctx, "a risk profile could not be read; the user starts afresh", "user_id", userID, "error", err.Error())
		return &risk.Profile{}, nil
	}
	return p, nil
}

// riskInputs are what scoring reads from the stores: the user's profile
// (the database) and the failure counters (the ephemeral store).
type riskInputs struct {
	profile  *risk.Profile
	failures risk.Failures
	err      error // reading the profile failed
}

// fetchRisk starts reading the user's profile and the failure counters
// of ip and account, both at once, and returns what waits for them (nil
// when scoring is off). A password sign-in starts it before hashing the
// password, so that the reads cost it no time; an outage of the counters
// is logged and the sign-in scored without them.
func (s *Service) fetchRisk(ctx context.Context, userID, ip, account string) func() riskInputs {
	if s.Risk == nil {
		return nil
	}
	addr, _ := netip.ParseAddr(ip)
	ch := make(chan riskInputs, 1)
	go func() {
		var in riskInputs
		var wg sync.WaitGroup
		if s.RiskCounters != nil && addr.IsValid() {
			wg.Go(func() {
				f, err := s.RiskCounters.Read(ctx, addr, account)
				if err != nil {
					s.Log.WarnContext(ctx, "sign-in scored without the failure counters", "error", err.Error())
					return
				}
				in.failures = f
			})
		}
		in.profile, in.err = s.profile(ctx, userID)
		wg.Wait()
		ch <- in
	}()
	return sync.OnceValue(func() riskInputs { return <-ch })
}

// assess scores a sign-in of u, who tried account (the normalized login
// name), after its first factor was verified: the network from memory,
// the profile and the failure counters from fetched (fetchRisk), or read
// now when fetched is nil: one read of each store. nil when scoring is
// off.
func (s *Service) assess(ctx context.Context, u store.User, account string, m httpapi.Meta, fetched func() riskInputs) (*scored, error) {
	if s.Risk == nil {
		return nil, nil
	}
	if fetched == nil {
		fetched = s.fetchRisk(ctx, u.ID, m.IP, account)
	}
	a := &scored{at: s.now(), device: Fingerprint(m.DeviceID, m.UserAgent), network: s.network(m.IP)}
	in := fetched()
	if in.err != nil {
		return nil, in.err
	}
	a.profile = in.profile
	a.Assessment = s.Risk.Score(risk.Input{At: a.at, Device: a.device, Network: a.network, Profile: a.profile, Failures: in.failures})
	return a, nil
}

// failedSignIn feeds a wrong password for account to the failure
// counters; an outage is logged.
func (s *Service) failedSignIn(ctx context.Context, account, ip string) {
	if s.Risk == nil || s.RiskCounters == nil {
		return
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	if err := s.RiskCounters.Failed(context.WithoutCancel(ctx), a, account); err != nil {
		s.Log.WarnContext(ctx, "a failed sign-in was not counted for risk scoring", "error", err.Error())
	}
}

// publishFailure publishes a failed sign-in (event.SignInFailed) in a
// transaction of its own, for security events: the account is userID, or
// subject (the keyed hash the lockout counts by) when the address has no
// account, so both cost the same. A failure to record it is logged.
func (s *Service) publishFailure(ctx context.Context, userID, subject string, m httpapi.Meta) {
	e := event.SignInFailed{UserID: userID, Account: userID, Meta: m}
	if e.Account == "" {
		e.Account = subject
	}
	if !s.Store.Listens(e) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.Store.InTx(ctx, func(tx Tx) error { return tx.Publish(ctx, e) }); err != nil {
		s.Log.ErrorContext(ctx, "could not record a failed sign-in", "error", err.Error())
	}
}

// learned is the user's profile once it learned a successful sign-in,
// for the sign-in's own write (store.SignIn.RiskProfile: no round trip of
// its own): profile is the one the sign-in was scored with, or nil to
// read it (a sign-in finished by a second factor). A profile that cannot
// be read or encoded is logged and nil: the sign-in goes on unlearned.
func (s *Service) learned(ctx context.Context, userID string, profile *risk.Profile, sign risk.SignIn) *store.RiskProfile {
	var err error
	if profile == nil {
		if profile, err = s.profile(ctx, userID); err != nil {
			s.Log.ErrorContext(ctx, "could not read the risk profile to learn a sign-in", "user_id", userID, "error", err.Error())
			return nil
		}
	}
	profile.Observe(sign)
	b, err := profile.Encode()
	if err != nil {
		s.Log.ErrorContext(ctx, "could not encode the risk profile", "user_id", userID, "error", err.Error())
		return nil
	}
	return &store.RiskProfile{UserID: userID, Profile: b, UpdatedAt: sign.At}
}

// riskEvent is the event of a step-up or block decision.
func riskEvent(u store.User, a *scored, m httpapi.Meta) event.SignInRisk {
	reasons := make([]store.SecurityReason, len(a.Reasons))
	for i, r := range a.Reasons {
		reasons[i] = store.SecurityReason{Code: string(r.Code), Points: r.Points}
	}
	return event.SignInRisk{
		UserID: u.ID, Decision: string(a.Decision), Score: a.Score, Reasons: reasons,
		Country: a.network.Country, City: a.network.City, ASN: uint32(a.network.ASN), Meta: m,
	}
}

// blocked records a sign-in refused by its score (an audit event, the
// risk event and the email to the user) in one transaction.
func (s *Service) blocked(ctx context.Context, u store.User, a *scored, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: a.at, SubjectID: u.ID, Action: "security.risk_blocked",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"score": a.Score, "reasons": a.Codes()},
		}); err != nil {
			return err
		}
		if s.Jobs != nil {
			args, err := mail.NewSendArgs(s.Keys, mail.RiskBlocked, u.Email, mail.Data{RecipientName: u.Name, IP: m.IP, UserAgent: m.UserAgent, Time: a.at}, "")
			if err != nil {
				return err
			}
			if _, err := s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil); err != nil {
				return err
			}
		}
		return tx.Publish(ctx, riskEvent(u, a, m))
	})
}

// steppedUp records a sign-in asked for a second factor by its score.
func (s *Service) steppedUp(ctx context.Context, u store.User, a *scored, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: a.at, SubjectID: u.ID, Action: "security.risk_step_up",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"score": a.Score, "reasons": a.Codes()},
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, riskEvent(u, a, m))
	})
}
