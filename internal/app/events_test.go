package app

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/store"
)

// newTestServices builds the domain services as the server does (without
// listeners or a working queue) on the settings of env.
func newTestServices(t *testing.T, env map[string]string) (*deps, services) {
	t.Helper()
	cfg := testConfig(t, env)
	log := logging.New(io.Discard, "error", "json")
	ctx := context.Background()
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrateUp(ctx, db, log); err != nil {
		t.Fatal(err)
	}
	st, err := openState(ctx, cfg, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := loadKeyring(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	tokensCtx, stop := context.WithCancel(ctx)
	tokens, err := startTokens(tokensCtx, cfg, db, keys, st, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); <-tokens.Done() })
	queue, err := db.newQueue(nil, jobsConfig(cfg, log, false))
	if err != nil {
		t.Fatal(err)
	}
	policy, closePolicy, err := newPolicy(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closePolicy() })
	d := &deps{cfg: cfg, log: log, db: db, state: st, keys: keys, queue: queue, reg: prometheus.NewRegistry(),
		bus: event.NewBus(), hasher: newHasher(cfg), policy: policy, tokens: tokens}
	svc, err := newServices(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, svc
}

// TestSecondFactorEvents checks that confirming and removing a second
// factor publish SecondFactorEnrolled and SecondFactorRemoved with the
// change's record, and that a subscriber's error rolls that record back.
func TestSecondFactorEvents(t *testing.T) {
	for name, env := range map[string]func(t *testing.T) map[string]string{
		"embedded":       func(*testing.T) map[string]string { return nil },
		"postgres+redis": postgresRedisEnv,
	} {
		t.Run(name, func(t *testing.T) {
			d, svc := newTestServices(t, env(t))
			ctx := context.Background()
			var enrolled []event.SecondFactorEnrolled
			var removed []event.SecondFactorRemoved
			refuse := errors.New("refused")
			refusing := false
			event.Subscribe(d.bus, func(_ context.Context, _ event.Tx, e event.SecondFactorEnrolled) error {
				if refusing {
					return refuse
				}
				enrolled = append(enrolled, e)
				return nil
			})
			event.Subscribe(d.bus, func(_ context.Context, _ event.Tx, e event.SecondFactorRemoved) error {
				removed = append(removed, e)
				return nil
			})
			actions := func(userID string) map[string]int {
				t.Helper()
				evs, _, err := d.db.store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: userID})
				if err != nil {
					t.Fatal(err)
				}
				n := map[string]int{}
				for _, e := range evs {
					n[e.Action]++
				}
				return n
			}
			newUser := func(email string) store.User {
				t.Helper()
				u, err := d.db.store.CreateUser(ctx, store.User{Email: email, EmailNormalized: email, Status: store.UserActive, EmailVerifiedAt: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			enrol := func(u store.User) string {
				t.Helper()
				enr, err := svc.mfa.EnrollTOTP(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := svc.mfa.ConfirmDevice(ctx, u.ID, enr.ID, totpAt(t, enr.Secret, time.Now())); err != nil {
					t.Fatal(err)
				}
				return enr.ID
			}

			u := newUser("ada@example.com")
			id := enrol(u)
			if len(enrolled) != 1 || enrolled[0] != (event.SecondFactorEnrolled{UserID: u.ID, Method: "totp", DeviceID: id}) {
				t.Fatalf("SecondFactorEnrolled events %+v, want ada's authenticator app", enrolled)
			}
			if err := svc.mfa.RemoveDevice(ctx, auth.Principal{UserID: u.ID, AuthTime: time.Now()}, id); err != nil {
				t.Fatal(err)
			}
			if len(removed) != 1 || removed[0] != (event.SecondFactorRemoved{UserID: u.ID, Method: "totp", DeviceID: id}) {
				t.Fatalf("SecondFactorRemoved events %+v, want ada's authenticator app", removed)
			}
			if n := actions(u.ID); n["mfa.device_added"] != 1 || n["mfa.device_removed"] != 1 {
				t.Errorf("ada's records %v, want one device added and one removed", n)
			}

			// The record of the change (and its email) is what the
			// subscriber's error rolls back.
			refusing = true
			v := newUser("vic@example.com")
			enrol(v)
			if n := actions(v.ID); n["mfa.device_added"] != 0 {
				t.Errorf("vic's records %v, want no device added (the subscriber refused)", n)
			}
		})
	}
}
