package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
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

// TestDomainEventsGiveValidWebhookMessages drives the domain services as
// the server wires them, with a handler of every event subscribed as the
// webhook outbox will be, and checks that what the real changes publish
// gives the webhook messages expected, each valid against its type's
// schema; and that regenerating backup codes is one change with its
// event (a subscriber's error keeps the old codes).
func TestDomainEventsGiveValidWebhookMessages(t *testing.T) {
	for name, env := range map[string]func(t *testing.T) map[string]string{
		"embedded":       func(*testing.T) map[string]string { return nil },
		"postgres+redis": postgresRedisEnv,
	} {
		t.Run(name, func(t *testing.T) {
			all := map[string]string{"GATEHOUSE_ARGON2_MEMORY_KIB": "19456"}
			for k, v := range env(t) {
				all[k] = v
			}
			d, svc := newTestServices(t, all)
			ctx := context.Background()
			schemas := map[string]*jsonschema.Schema{}
			for _, typ := range catalog.Types() {
				c := jsonschema.NewCompiler()
				c.AssertFormat()
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(typ.Schema))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.AddResource(typ.Name, doc); err != nil {
					t.Fatal(err)
				}
				if schemas[typ.Name], err = c.Compile(typ.Name); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			refuse := ""
			event.SubscribeAll(d.bus, func(_ context.Context, _ event.Tx, e event.Event) error {
				if e.EventName() == refuse {
					return errors.New("refused")
				}
				for _, m := range catalog.Messages(e) {
					b, err := json.Marshal(m.Data)
					if err != nil {
						return err
					}
					v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
					if err != nil {
						return err
					}
					if err := schemas[m.Type].Validate(v); err != nil {
						t.Errorf("%s from %s: %s does not match its schema: %v", m.Type, e.EventName(), b, err)
					}
					got = append(got, m.Type)
				}
				return nil
			})
			expect := func(step string, want ...string) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Errorf("%s: webhook messages %v, want %v", step, got, want)
				}
				got = nil
			}
			web := httpapi.Meta{IP: "203.0.113.9", UserAgent: "Mozilla/5.0 Firefox/140.0", RequestID: "req-e2e"}

			ann, err := svc.users.Create(ctx, user.NewUser{Email: "ann@example.com", Password: strongPassword, Verified: true}, httpapi.Meta{UserAgent: "gatehouse-cli"})
			if err != nil {
				t.Fatal(err)
			}
			expect("created", "user.created")
			res, err := svc.sessions.Login(ctx, "ann@example.com", strongPassword, web)
			if err != nil {
				t.Fatal(err)
			}
			expect("login", "session.created")
			me := web
			me.ActorID, me.AuthTime = ann.ID, time.Now()
			if _, err := svc.users.UpdateProfile(ctx, ann.ID, user.ProfilePatch{}, me); err != nil {
				t.Fatal(err)
			}
			expect("empty patch")
			var patch user.ProfilePatch
			if err := json.Unmarshal([]byte(`{"name": "Ann B", "phone_number": "+14155552671", "metadata": {"plan": "pro"}, "email": "ann@example.org"}`), &patch); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.users.UpdateProfile(ctx, ann.ID, patch, me); err != nil {
				t.Fatal(err)
			}
			expect("profile", "user.updated")

			// Second factors: enrolled, backup codes (refused once), removed.
			enr, err := svc.mfa.EnrollTOTP(ctx, ann.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.mfa.ConfirmDevice(ctx, ann.ID, enr.ID, totpAt(t, enr.Secret, time.Now())); err != nil {
				t.Fatal(err)
			}
			expect("enrolled", "mfa.enrolled")
			recent := auth.Principal{UserID: ann.ID, SessionID: res.Session.ID, AuthTime: time.Now()}
			codes, err := svc.mfa.RegenerateBackupCodes(ctx, recent)
			if err != nil {
				t.Fatal(err)
			}
			expect("backup codes", "mfa.backup_codes_regenerated")
			refuse = "mfa.backup_codes_regenerated"
			if _, err := svc.mfa.RegenerateBackupCodes(ctx, recent); err == nil {
				t.Error("backup codes regenerated although the subscriber refused")
			}
			refuse = ""
			hash := svc.mfa.Codes.Hash("backup-code", otp.NormalizeBackupCode(codes[0]))
			if ok, err := d.db.store.UseBackupCode(ctx, ann.ID, hash, time.Now()); err != nil || !ok {
				t.Errorf("a code of the set kept by the refused regeneration: ok %v, err %v; want it usable", ok, err)
			}
			if err := svc.mfa.RemoveDevice(ctx, recent, enr.ID); err != nil {
				t.Fatal(err)
			}
			expect("removed", "mfa.removed")

			// Locked by wrong passwords, unlocked by an administrator.
			for range 5 {
				svc.sessions.Login(ctx, "ann@example.com", "not the password", web)
			}
			expect("locked", "user.locked", "security.lockout")
			admin := httpapi.Meta{ActorID: "0193a5c2-7e41-7b8a-9c3d-2f6e8a1b0001", IP: "198.51.100.4", UserAgent: "admin-console"}
			if _, err := svc.admin.Unlock(ctx, admin, ann.ID); err != nil {
				t.Fatal(err)
			}
			expect("unlocked", "user.unlocked")

			org, err := d.db.store.CreateOrganization(ctx, store.Organization{Name: "Acme", Slug: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.admin.SetMember(ctx, admin, org.ID, ann.ID, store.OrgMember); err != nil {
				t.Fatal(err)
			}
			if err := svc.admin.RemoveMember(ctx, admin, org.ID, ann.ID); err != nil {
				t.Fatal(err)
			}
			expect("membership", "organization.member_added", "organization.member_removed")

			if err := svc.users.ChangePassword(ctx, ann.ID, res.Session.ID, strongPassword, "another strong passphrase 77", me); err != nil {
				t.Fatal(err)
			}
			expect("password", "user.password_changed")
			if err := svc.sessions.Logout(ctx, ann.ID, res.Session.ID, web); err != nil {
				t.Fatal(err)
			}
			expect("logout", "session.revoked")
			if _, err := svc.admin.SetStatus(ctx, admin, ann.ID, store.UserDisabled); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.admin.SetStatus(ctx, admin, ann.ID, store.UserActive); err != nil {
				t.Fatal(err)
			}
			expect("status", "user.disabled", "user.enabled")
			if _, err := svc.sessions.Login(ctx, "ann@example.com", "another strong passphrase 77", web); err != nil {
				t.Fatal(err)
			}
			if err := svc.admin.DeleteUser(ctx, admin, ann.ID); err != nil {
				t.Fatal(err)
			}
			expect("delete", "session.created", "user.deleted", "session.revoked")
		})
	}
}
