package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runTx(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("Commit", func(t *testing.T) { testTxCommit(t, migrated(t)) })
	t.Run("RollbackOnError", func(t *testing.T) { testTxRollbackOnError(t, migrated(t)) })
	t.Run("RollbackOnPanic", func(t *testing.T) { testTxRollbackOnPanic(t, migrated(t)) })
	t.Run("Nested", func(t *testing.T) { testTxNested(t, migrated(t)) })
	t.Run("Isolation", func(t *testing.T) { testTxIsolation(t, migrated(t)) })
	t.Run("DriverTx", func(t *testing.T) { testTxDriverTx(t, migrated(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testTxCanceled(t, migrated(t)) })
	t.Run("ForUpdateSerialises", func(t *testing.T) { testTxForUpdate(t, migrated(t)) })
}

var errRollback = errors.New("storetest: roll back")

// checkAbsent fails unless no user has this email, and then checks that the
// store still takes writes: a transaction left open would block them.
func checkAbsent(t *testing.T, s store.Store, email string) {
	t.Helper()
	if u, err := s.GetUserByEmail(context.Background(), email); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByEmail(%s) = %s, %v; want ErrNotFound after rollback", email, u.ID, err)
	}
	if n := count(t, s, "SELECT count(*) FROM users WHERE email_normalized = '"+email+"'"); n != 0 {
		t.Errorf("%d rows for %s after rollback", n, email)
	}
	mustAppend(t, s, store.AuditEvent{Action: "test.after_rollback"})
}

func testTxCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var created store.User
	tok := store.OneTimeToken{Purpose: store.PurposeVerifyEmail, TokenHash: tokenHash(), ExpiresAt: tokenAt.Add(time.Hour)}
	err := s.InTx(ctx, func(tx store.Store) error {
		var err error
		if created, err = tx.CreateUser(ctx, newUser("commit@example.com")); err != nil {
			return err
		}
		tok.UserID = created.ID
		if err := tx.CreateOneTimeToken(ctx, tok); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, store.AuditEvent{Action: "user.registered", SubjectID: created.ID})
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if got, err := s.GetUser(ctx, created.ID); err != nil || got.EmailNormalized != "commit@example.com" {
		t.Errorf("GetUser after commit = %+v, %v", got, err)
	}
	if !consumable(t, s, tok) {
		t.Error("token created in the committed transaction not consumable")
	}
	events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: created.ID})
	if err != nil || len(events) != 1 {
		t.Errorf("audit events after commit: %d, %v; want 1", len(events), err)
	}
}

func testTxRollbackOnError(t *testing.T, s store.Store) {
	ctx := context.Background()
	existing := mustCreateUser(t, s, newUser("existing@example.com"))
	tok := mustCreateToken(t, s, existing.ID, store.PurposePasswordReset)
	err := s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreateUser(ctx, newUser("rollback@example.com")); err != nil {
			return err
		}
		u := existing
		u.Name = "changed"
		if _, err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		if _, err := tx.ConsumeOneTimeToken(ctx, tok.Purpose, tok.TokenHash, tokenAt); err != nil {
			return err
		}
		if err := tx.SoftDeleteUser(ctx, existing.ID, time.Now()); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errRollback)
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want fn's error", err)
	}
	checkAbsent(t, s, "rollback@example.com")
	if got, err := s.GetUser(ctx, existing.ID); err != nil || got.Name != "" {
		t.Errorf("GetUser after rollback = %+v, %v; want the user undeleted and unchanged", got, err)
	}
	if !consumable(t, s, tok) {
		t.Error("token consumed in a rolled-back transaction is gone")
	}

	// A statement error fn passes on rolls back the statements before it.
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreateUser(ctx, newUser("first@example.com")); err != nil {
			return err
		}
		_, err := tx.CreateUser(ctx, newUser("existing@example.com"))
		return err
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("InTx with a conflicting insert = %v, want ErrConflict", err)
	}
	checkAbsent(t, s, "first@example.com")
}

func testTxRollbackOnPanic(t *testing.T, s store.Store) {
	ctx := context.Background()
	type boom struct{ n int }
	recovered := func() (p any) {
		defer func() { p = recover() }()
		_ = s.InTx(ctx, func(tx store.Store) error {
			if _, err := tx.CreateUser(ctx, newUser("panic@example.com")); err != nil {
				t.Errorf("CreateUser: %v", err)
			}
			panic(boom{42})
		})
		return nil
	}()
	if recovered != (boom{42}) {
		t.Errorf("recovered %#v, want InTx to re-panic with fn's value", recovered)
	}
	checkAbsent(t, s, "panic@example.com")
	// The connection went back to the pool in a usable state.
	if err := s.InTx(ctx, func(tx store.Store) error {
		_, err := tx.CreateUser(ctx, newUser("after-panic@example.com"))
		return err
	}); err != nil {
		t.Errorf("InTx after a panic: %v", err)
	}
}

func testTxNested(t *testing.T, s store.Store) {
	ctx := context.Background()
	var outerTx, innerTx any
	err := s.InTx(ctx, func(tx store.Store) error {
		outerTx = tx.DriverTx()
		outer, err := tx.CreateUser(ctx, newUser("outer@example.com"))
		if err != nil {
			return err
		}
		err = tx.InTx(ctx, func(inner store.Store) error {
			innerTx = inner.DriverTx()
			// The inner function sees the outer one's writes …
			if _, err := inner.GetUser(ctx, outer.ID); err != nil {
				return fmt.Errorf("inner GetUser(outer): %w", err)
			}
			_, err := inner.CreateUser(ctx, newUser("inner@example.com"))
			return err
		})
		if err != nil {
			return err
		}
		// … and the other way round.
		if _, err := tx.GetUserByEmail(ctx, "inner@example.com"); err != nil {
			return fmt.Errorf("outer GetUserByEmail(inner): %w", err)
		}
		// The inner InTx did not commit on its own: this undoes both.
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want errRollback", err)
	}
	if outerTx == nil || innerTx != outerTx {
		t.Errorf("nested InTx ran in %v, outer in %v; want the same transaction", innerTx, outerTx)
	}
	checkAbsent(t, s, "outer@example.com")
	checkAbsent(t, s, "inner@example.com")

	// An inner error comes back out of the inner InTx unchanged.
	errInner := errors.New("inner")
	err = s.InTx(ctx, func(tx store.Store) error {
		if err := tx.InTx(ctx, func(store.Store) error { return errInner }); err != errInner {
			return fmt.Errorf("inner InTx = %v, want errInner", err)
		}
		_, err := tx.CreateUser(ctx, newUser("after-inner-error@example.com"))
		return err
	})
	if err != nil {
		t.Errorf("InTx: %v", err)
	}
	if _, err := s.GetUserByEmail(ctx, "after-inner-error@example.com"); err != nil {
		t.Errorf("write after a handled inner error not committed: %v", err)
	}
}

// Inside the transaction every method, reads included, sees its writes;
// outside it nobody does until it commits.
func testTxIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	committed := make(chan struct{})
	var id string
	err := s.InTx(ctx, func(tx store.Store) error {
		u, err := tx.CreateUser(ctx, newUser("isolated@example.com"))
		if err != nil {
			return err
		}
		id = u.ID
		if _, err := tx.GetUser(ctx, id); err != nil {
			return fmt.Errorf("tx.GetUser: %w", err)
		}
		if _, err := tx.GetUserForUpdate(ctx, id); err != nil {
			return fmt.Errorf("tx.GetUserForUpdate: %w", err)
		}
		if _, err := tx.GetUserByEmail(ctx, "isolated@example.com"); err != nil {
			return fmt.Errorf("tx.GetUserByEmail: %w", err)
		}
		if users, _, err := tx.ListUsers(ctx, store.UserFilter{}); err != nil || len(users) != 1 {
			return fmt.Errorf("tx.ListUsers = %d users, %v; want 1", len(users), err)
		}
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.in_tx"}); err != nil {
			return err
		}
		if events, _, err := tx.ListAuditEvents(ctx, store.AuditFilter{}); err != nil || len(events) != 1 {
			return fmt.Errorf("tx.ListAuditEvents = %d events, %v; want 1", len(events), err)
		}
		// Another goroutine, as another request would, reads outside the
		// transaction (and must not wait for it).
		go func() {
			defer close(committed)
			if _, err := s.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetUser outside the open transaction: err = %v, want ErrNotFound", err)
			}
			if users, _, err := s.ListUsers(ctx, store.UserFilter{}); err != nil || len(users) != 0 {
				t.Errorf("ListUsers outside the open transaction = %d users, %v; want none", len(users), err)
			}
		}()
		<-committed
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := s.GetUser(ctx, id); err != nil {
		t.Errorf("GetUser after commit: %v", err)
	}
}

func testTxDriverTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	if tx := s.DriverTx(); tx != nil {
		t.Errorf("DriverTx() outside InTx = %#v, want nil", tx)
	}
	var bound store.Store
	for _, commit := range []bool{true, false} {
		email := fmt.Sprintf("driver-%v@example.com", commit)
		err := s.InTx(ctx, func(tx store.Store) error {
			bound = tx
			switch dt := tx.DriverTx().(type) {
			case pgx.Tx:
				if s.Dialect() != store.DialectPostgres {
					t.Errorf("DriverTx() is a pgx.Tx on %s", s.Dialect())
				}
			case *sql.Tx:
				if s.Dialect() != store.DialectSQLite || dt == nil {
					t.Errorf("DriverTx() is a %#v on %s", dt, s.Dialect())
				}
			default:
				t.Errorf("DriverTx() inside InTx = %T, want pgx.Tx or *sql.Tx", dt)
				return nil
			}
			u, err := tx.CreateUser(ctx, newUser(email))
			if err != nil {
				return err
			}
			// The driver transaction is the store's: it sees the user and its
			// writes commit or roll back with the store's.
			var n int64
			if err := driverQueryRow(ctx, tx, "SELECT count(*) FROM users WHERE id = '"+u.ID+"'", &n); err != nil || n != 1 {
				return fmt.Errorf("user through DriverTx: count %d, err %v", n, err)
			}
			if err := driverExec(ctx, tx, "UPDATE users SET name = 'set through DriverTx' WHERE id = '"+u.ID+"'"); err != nil {
				return err
			}
			if got, err := tx.GetUser(ctx, u.ID); err != nil || got.Name != "set through DriverTx" {
				return fmt.Errorf("tx.GetUser after a driver write = %+v, %v", got, err)
			}
			if !commit {
				return errRollback
			}
			return nil
		})
		if commit && err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if !commit && !errors.Is(err, errRollback) {
			t.Fatalf("InTx: %v, want errRollback", err)
		}
		got, err := s.GetUserByEmail(ctx, email)
		switch {
		case commit && (err != nil || got.Name != "set through DriverTx"):
			t.Errorf("after commit: %+v, %v; want the driver's write kept", got, err)
		case !commit && !errors.Is(err, store.ErrNotFound):
			t.Errorf("after rollback: err = %v, want ErrNotFound", err)
		}
	}
	if bound == nil {
		t.Fatal("fn never ran")
	}
	// The transaction's store is spent once InTx returns.
	if _, err := bound.CreateUser(ctx, newUser("late@example.com")); err == nil {
		t.Error("CreateUser on a transaction store after InTx returned succeeded")
	}
	checkAbsent(t, s, "late@example.com")
}

func testTxCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.InTx(ctx, func(store.Store) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("InTx with a canceled context = %v, fn ran: %v; want an error before fn", err, ran)
	}
	mustAppend(t, s, store.AuditEvent{Action: "test.after_cancel"})
}

// Read-modify-write cycles on one user, each in a transaction that reads
// with GetUserForUpdate, never lose an update, however they interleave.
func testTxForUpdate(t *testing.T, s store.Store) {
	const workers, rounds = 2, 20
	ctx := context.Background()
	u := newUser("counter@example.com")
	u.Metadata = map[string]any{"counter": 0.0}
	u = mustCreateUser(t, s, u)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := s.InTx(ctx, func(tx store.Store) error {
					cur, err := tx.GetUserForUpdate(ctx, u.ID)
					if err != nil {
						return err
					}
					// Widen the window between read and write, so a missing
					// lock shows as lost updates.
					time.Sleep(time.Millisecond)
					cur.Metadata["counter"] = cur.Metadata["counter"].(float64) + 1
					_, err = tx.UpdateUser(ctx, cur)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("increment: %v", err)
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Metadata["counter"]; c != float64(workers*rounds) {
		t.Errorf("counter = %v after %d increments, want %d", c, workers*rounds, workers*rounds)
	}
}
