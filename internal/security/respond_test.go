package security_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/store"
)

// mails records the mail jobs enqueued (inside the recording
// transaction: a rolled-back one leaves its job in the list, which no test
// here rolls back).
type mails struct {
	mu   sync.Mutex
	sent []mail.SendArgs
}

func (m *mails) InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	if tx == nil {
		return 0, fmt.Errorf("no transaction")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, args.(mail.SendArgs))
	return int64(len(m.sent)), nil
}

func (m *mails) take() []mail.SendArgs {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.sent
	m.sent = nil
	return out
}

// responderEnv is env with a Responder whose actions are recorded.
type responderEnv struct {
	*env
	resp    *security.Responder
	mails   *mails
	mu      sync.Mutex
	blocked []string // addresses blocked, in order
	ended   []string // users whose sessions were ended
}

func newResponderEnv(t *testing.T, e *env, tune func(*security.ResponseSettings)) *responderEnv {
	t.Helper()
	// Two administrators and a user, who is not told.
	for i, u := range []store.User{
		{Email: "root@example.com", EmailNormalized: "root@example.com", IsAdmin: true},
		{Email: "sec@example.com", EmailNormalized: "sec@example.com", IsAdmin: true},
		{Email: "ada@example.com", EmailNormalized: "ada@example.com"},
	} {
		u.ID = user(900 + i)
		if _, err := e.store.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return newResponder(t, e, tune)
}

// newResponder is a Responder on e, whose actions are recorded: each
// address blocked is blocked a minute longer than the last time.
func newResponder(t *testing.T, e *env, tune func(*security.ResponseSettings)) *responderEnv {
	t.Helper()
	ks, _ := secret.GenerateKeyString("t1")
	kr, err := secret.ParseKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	re := &responderEnv{env: e, mails: &mails{}}
	settings := security.DefaultResponseSettings()
	if tune != nil {
		tune(&settings)
	}
	levels := map[string]int{}
	re.resp, err = security.NewResponder(security.ResponderDeps{
		Settings: settings, Recorder: e.rec,
		InTx: event.Narrow(e.store, e.bus, func(tx event.Tx) security.ReactTx { return tx }).InTx,
		BlockIP: func(ctx context.Context, ip string) (int, time.Duration, error) {
			re.mu.Lock()
			defer re.mu.Unlock()
			re.blocked = append(re.blocked, ip)
			levels[ip]++
			return levels[ip], time.Minute << (levels[ip] - 1), nil
		},
		Allowlisted: func(ip string) bool { return ip == "192.0.2.250" },
		EndSessions: func(ctx context.Context, userID, reason string) (int, error) {
			re.mu.Lock()
			defer re.mu.Unlock()
			re.ended = append(re.ended, userID+":"+reason)
			return 2, nil
		},
		Jobs: re.mails, Keys: kr, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// handle records ev through the responder in a transaction of its own.
func (re *responderEnv) handle(t *testing.T, ev security.Event) {
	t.Helper()
	err := event.Narrow(re.store, re.bus, func(tx event.Tx) security.ReactTx { return tx }).InTx(context.Background(), func(tx security.ReactTx) error {
		return re.resp.Handle(context.Background(), tx, ev)
	})
	if err != nil {
		t.Fatalf("Handle(%+v): %v", ev, err)
	}
}

func (re *responderEnv) actions() (blocked, ended []string) {
	re.mu.Lock()
	defer re.mu.Unlock()
	return slices.Clone(re.blocked), slices.Clone(re.ended)
}

// recipients are the addresses of mails, sorted.
func recipients(ms []mail.SendArgs) []string {
	var out []string
	for _, m := range ms {
		if m.Template != mail.SecurityAlert {
			out = append(out, "not a security alert: "+m.Template)
		}
		out = append(out, m.To)
	}
	slices.Sort(out)
	return out
}

func published[E event.Event](e *env) []E {
	var out []E
	for _, ev := range e.events() {
		if x, ok := ev.(E); ok {
			out = append(out, x)
		}
	}
	return out
}

func automated(t *testing.T, e *env) []store.SecurityEvent {
	t.Helper()
	list, _, err := e.store.ListSecurityEvents(context.Background(), store.SecurityEventFilter{Type: security.TypeAutomatedResponse})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

var admins = []string{"root@example.com", "sec@example.com"}

// TestRespondCredentialStuffing: the incident of an address failing
// against many accounts (existing or not) notifies the administrators
// once, by email and webhook event, and blocks the address at every
// further failure, each block recorded with its rule.
func TestRespondCredentialStuffing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		re := newResponderEnv(t, e, nil)
		ip := "203.0.113.66"
		// 9 accounts, 4 of them without an account (a hash of the name
		// tried): below the threshold of 10.
		for i := range 9 {
			e.clock.Advance(time.Second)
			ev := security.Event{Type: security.TypeLoginFailed, IP: ip, UserID: user(i), Account: user(i)}
			if i >= 5 {
				ev.UserID, ev.Account = "", fmt.Sprintf("h:%d", i)
			}
			re.handle(t, ev)
		}
		if b, _ := re.actions(); len(b) != 0 || len(re.mails.take()) != 0 || len(published[event.SecurityIncidentNotified](e)) != 0 {
			t.Fatalf("below the threshold: blocked %v", b)
		}
		// The tenth account opens the incident.
		e.clock.Advance(time.Second)
		re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: ip, Account: "h:9"})
		incs := e.incidents(t, security.IncidentCredentialStuffing)
		if len(incs) != 1 {
			t.Fatalf("incidents = %+v", incs)
		}
		inc := incs[0]
		wantUsers := []string{user(0), user(1), user(2), user(3), user(4)}
		if inc.Severity != store.SeverityHigh || !inc.NotifiedAt.Equal(e.clock.Now()) || !slices.Equal(inc.UserIDs, wantUsers) ||
			inc.EventCount != 10 || !slices.Equal(inc.IPs, []string{ip}) {
			t.Errorf("incident = %+v, want high, notified now, the 5 existing accounts, 10 events", inc)
		}
		if got := recipients(re.mails.take()); !slices.Equal(got, admins) {
			t.Errorf("emailed %v, want the administrators %v", got, admins)
		}
		if n := published[event.SecurityIncidentNotified](e); len(n) != 1 || n[0].Incident.ID != inc.ID || n[0].Escalated {
			t.Errorf("notified = %+v", n)
		}
		blocked, _ := re.actions()
		if !slices.Equal(blocked, []string{ip}) {
			t.Errorf("blocked %v, want %s once", blocked, ip)
		}
		auto := automated(t, e)
		if len(auto) != 1 || auto[0].IP != ip || auto[0].Data["rule"] != security.RuleBlockStuffingIP ||
			auto[0].Data["incident_id"] != inc.ID || auto[0].Data["level"] != float64(1) || auto[0].Data["blocked_seconds"] != float64(60) {
			t.Errorf("automated responses = %+v", auto)
		}
		// The address comes back once the block ended: blocked again,
		// twice as long; no new email (the incident was told of).
		e.clock.Advance(2 * time.Minute)
		re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: ip, Account: "h:10"})
		if blocked, _ := re.actions(); !slices.Equal(blocked, []string{ip, ip}) {
			t.Errorf("blocked %v, want %s twice", blocked, ip)
		}
		if auto := automated(t, e); len(auto) != 2 || auto[0].Data["level"] != float64(2) || auto[0].Data["blocked_seconds"] != float64(120) {
			t.Errorf("automated responses = %+v", auto)
		}
		if m := re.mails.take(); len(m) != 0 {
			t.Errorf("an extension emailed %v", recipients(m))
		}
		// Another address's lone failure does nothing.
		re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: "198.51.100.1", Account: "h:1"})
		if blocked, _ := re.actions(); len(blocked) != 2 {
			t.Errorf("blocked %v", blocked)
		}
	})
}

// TestRespondAllowlistAndOff: an allowlisted address is never blocked, and
// with BlockIPs off no address is.
func TestRespondAllowlistAndOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		re := newResponderEnv(t, e, nil)
		for i := range 12 {
			re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: "192.0.2.250", Account: fmt.Sprintf("h:%d", i)})
		}
		off := newResponder(t, e, func(s *security.ResponseSettings) { s.BlockIPs = false })
		for i := range 12 {
			off.handle(t, security.Event{Type: security.TypeLoginFailed, IP: "192.0.2.251", Account: fmt.Sprintf("h:%d", i)})
		}
		if len(e.incidents(t, security.IncidentCredentialStuffing)) != 2 {
			t.Fatal("want two incidents")
		}
		if b, _ := re.actions(); len(b) != 0 {
			t.Errorf("allowlisted address blocked: %v", b)
		}
		if b, _ := off.actions(); len(b) != 0 {
			t.Errorf("blocked with BlockIPs off: %v", b)
		}
		if auto := automated(t, e); len(auto) != 0 {
			t.Errorf("automated responses = %+v", auto)
		}
	})
}

// TestRespondEventsAndAccounts: an event at or above the alert severity
// alerts (email and webhook event), one below does not; an account in use
// from many countries (high) ends its sessions, recorded as an automated
// response.
func TestRespondEventsAndAccounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		re := newResponderEnv(t, e, nil)
		victim := user(902)
		score := 95
		re.handle(t, security.Event{Type: security.TypeRiskBlocked, UserID: victim, IP: "203.0.113.5", Country: "AU", City: "Sydney", Score: &score,
			Reasons: []store.SecurityReason{{Code: "tor_exit", Points: 50}, {Code: "impossible_travel", Points: 50}}})
		if got := recipients(re.mails.take()); !slices.Equal(got, admins) {
			t.Errorf("a high event emailed %v", got)
		}
		alerts := published[event.SecurityAlerted](e)
		if len(alerts) != 1 || alerts[0].Event.Type != security.TypeRiskBlocked || alerts[0].Event.UserID != victim {
			t.Errorf("alerts = %+v", alerts)
		}
		re.handle(t, security.Event{Type: security.TypeLockout, UserID: victim, IP: "203.0.113.5"})
		if m := re.mails.take(); len(m) != 0 || len(published[event.SecurityAlerted](e)) != 1 {
			t.Errorf("a medium event alerted: %v", recipients(m))
		}
		// In use from three countries: account_many_countries (high).
		for i, c := range []string{"FR", "US"} {
			e.clock.Advance(time.Minute)
			re.handle(t, security.Event{Type: security.TypeSessionAnomaly, Severity: store.SeverityMedium, UserID: victim, IP: fmt.Sprintf("198.51.100.%d", i+1), Country: c})
		}
		if _, ended := re.actions(); !slices.Equal(ended, []string{victim + ":security_incident"}) {
			t.Errorf("sessions ended for %v, want the victim's once", ended)
		}
		incs := e.incidents(t, security.IncidentAccountManyCountries)
		if len(incs) != 1 || incs[0].Key != victim || incs[0].Severity != store.SeverityHigh {
			t.Fatalf("incidents = %+v", incs)
		}
		auto := automated(t, e)
		if len(auto) != 1 || auto[0].UserID != victim || auto[0].Data["rule"] != security.RuleEndSessions ||
			auto[0].Data["sessions_ended"] != float64(2) || auto[0].Data["incident_id"] != incs[0].ID {
			t.Errorf("automated responses = %+v", auto)
		}
		// Failures from many countries do not count: no one can make an
		// account look spread across the world by failing.
		other := user(901)
		for i, c := range []string{"FR", "US", "BR", "JP"} {
			re.handle(t, security.Event{Type: security.TypeLoginFailed, UserID: other, IP: fmt.Sprintf("192.0.2.%d", i+1), Country: c})
		}
		if _, ended := re.actions(); len(ended) != 1 {
			t.Errorf("failures ended sessions: %v", ended)
		}
	})
}

// TestEscalate: an incident notified and left open is notified again after
// EscalateAfter, once per period; a resolved one is not, and the
// resolution is published.
func TestEscalate(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		re := newResponderEnv(t, e, func(s *security.ResponseSettings) { s.EscalateAfter = time.Hour })
		for i := range 10 {
			re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: "203.0.113.1", Account: fmt.Sprintf("h:%d", i)})
		}
		for i := range 10 {
			re.handle(t, security.Event{Type: security.TypeLoginFailed, IP: "203.0.113.2", Account: fmt.Sprintf("h:%d", i)})
		}
		incs := e.incidents(t, security.IncidentCredentialStuffing)
		if len(incs) != 2 {
			t.Fatalf("incidents = %+v", incs)
		}
		re.mails.take()
		if n, err := re.resp.Escalate(ctx, 100); err != nil || n != 0 {
			t.Fatalf("Escalate right away = %d %v, want 0", n, err)
		}
		// One is resolved; the other stays open past the hour.
		if _, err := e.svc.Resolve(ctx, incs[1].ID, "blocked at the edge", httpapiMeta()); err != nil {
			t.Fatal(err)
		}
		if r := published[event.SecurityIncidentResolved](e); len(r) != 1 || r[0].Incident.ID != incs[1].ID || r[0].Incident.Note != "blocked at the edge" {
			t.Errorf("resolved events = %+v", r)
		}
		e.clock.Advance(time.Hour)
		if n, err := re.resp.Escalate(ctx, 100); err != nil || n != 1 {
			t.Fatalf("Escalate after an hour = %d %v, want 1", n, err)
		}
		got, err := e.store.GetSecurityIncident(ctx, incs[0].ID)
		if err != nil || got.Escalations != 1 || !got.NotifiedAt.Equal(e.clock.Now()) {
			t.Errorf("escalated incident = %+v %v", got, err)
		}
		if esc := published[event.SecurityIncidentNotified](e); len(esc) != 3 || !esc[2].Escalated || esc[2].Incident.ID != incs[0].ID {
			t.Errorf("notifications = %+v, want the two openings and one escalation", esc)
		}
		if got := recipients(re.mails.take()); !slices.Equal(got, admins) {
			t.Errorf("escalation emailed %v", got)
		}
		if n, _ := re.resp.Escalate(ctx, 100); n != 0 {
			t.Errorf("escalated again within the hour: %d", n)
		}
		e.clock.Advance(time.Hour)
		if n, _ := re.resp.Escalate(ctx, 100); n != 1 {
			t.Errorf("second escalation: %d, want 1", n)
		}
	})
}

func httpapiMeta() httpapi.Meta { return httpapi.Meta{ActorID: user(999), IP: "10.0.0.1"} }
