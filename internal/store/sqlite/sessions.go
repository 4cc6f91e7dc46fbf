package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// Every multi-statement write below runs in one transaction (the caller's
// inside InTx), which holds SQLite's write lock from BEGIN IMMEDIATE: the
// writes to a refresh token family run one after the other, so a rotation
// needs no row locks.

// jsonList scans a TEXT column holding a JSON array of strings.
type jsonList struct{ l *[]string }

func (j jsonList) Scan(src any) error {
	var raw []byte
	switch v := src.(type) {
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		return fmt.Errorf("sqlite: list column holds %T, want TEXT", src)
	}
	l, err := sqlrow.DecodeList(raw)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	*j.l = l
	return nil
}

func listDest(l *[]string) any { return jsonList{l: l} }

// listValue binds a list as a JSON array.
func listValue(l []string) any { return sqlrow.EncodeList(l) }

func scanSession(row sqlrow.Scanner) (store.Session, error) {
	return sqlrow.ScanSession(row, timeDest, nullTimeDest, listDest)
}

func scanRefreshToken(row sqlrow.Scanner) (store.RefreshToken, error) {
	return sqlrow.ScanRefreshToken(row, timeDest, nullTimeDest)
}

var (
	insertSession = `INSERT INTO sessions (` + sqlrow.SessionColumns + `)
		VALUES (` + strings.Repeat("?, ", sqlrow.SessionColumnCount-1) + `?) RETURNING ` + sqlrow.SessionColumns
	insertRefreshToken = `INSERT INTO refresh_tokens (` + sqlrow.RefreshTokenColumns + `)
		VALUES (` + strings.Repeat("?, ", 13) + `?) RETURNING ` + sqlrow.RefreshTokenColumns
)

// mapRefErr is mapErr that also maps a foreign key violation (a session
// for a user, or a token for a session, that does not exist) to
// store.ErrNotFound.
func mapRefErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	return mapErr(err)
}

// CreateSession implements store.SessionStore: the session and its first
// token are inserted in one transaction (the caller's, inside InTx). A user
// that does not exist is ErrNotFound; a taken session or token ID, or token
// hash, is ErrConflict.
func (s *Store) CreateSession(ctx context.Context, x store.Session, first store.RefreshToken) (store.Session, error) {
	x, first, err := sqlrow.PrepareSession(x, first, s.now())
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: create session: %w", err)
	}
	var created store.Session
	err = s.inTx(ctx, func(tx *Store) error {
		var err error
		if created, err = scanSession(tx.tx.QueryRowContext(ctx, insertSession, sqlrow.SessionValues(x, timeValue, listValue)...)); err != nil {
			return err
		}
		_, err = tx.tx.ExecContext(ctx, insertRefreshToken, sqlrow.RefreshTokenValues(first, timeValue)...)
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: create session: %w", mapRefErr(err))
	}
	return created, nil
}

// StartSession implements store.SessionStore in one transaction (the
// caller's, inside InTx).
func (s *Store) StartSession(ctx context.Context, in store.SignIn) (store.Session, store.User, error) {
	in, data, err := sqlrow.PrepareSignIn(in, s.now())
	if err != nil {
		return store.Session{}, store.User{}, fmt.Errorf("sqlite: start session: %w", err)
	}
	var (
		sess store.Session
		u    store.User
	)
	err = s.inTx(ctx, func(tx *Store) error {
		var err error
		u, err = scanUser(tx.tx.QueryRowContext(ctx, `UPDATE users SET last_login_at = ?1, password_hash = coalesce(?2, password_hash), updated_at = ?3
			WHERE id = ?4 AND deleted_at IS NULL AND status <> 'disabled'
				AND (?5 IS NULL OR (password_hash = ?5 AND password_reset_required_at IS NULL)) RETURNING `+sqlrow.UserColumns,
			timeValue(in.Session.CreatedAt), sqlrow.Null(in.PasswordHash), timeValue(sqlrow.Micro(s.now())), in.Session.UserID,
			sqlrow.Null(in.CheckedPasswordHash)))
		if err != nil {
			return err
		}
		if sess, err = scanSession(tx.tx.QueryRowContext(ctx, insertSession, sqlrow.SessionValues(in.Session, timeValue, listValue)...)); err != nil {
			return err
		}
		if _, err = tx.tx.ExecContext(ctx, insertRefreshToken, sqlrow.RefreshTokenValues(in.First, timeValue)...); err != nil {
			return err
		}
		if _, err = tx.tx.ExecContext(ctx, insertAuditEvent, auditEventValues(in.Event, data)...); err != nil {
			return err
		}
		if rp := in.RiskProfile; rp != nil {
			_, err = tx.tx.ExecContext(ctx, `INSERT INTO user_risk_profiles (`+sqlrow.RiskProfileColumns+`) VALUES (?1, ?2, ?3)
				ON CONFLICT (user_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at`,
				rp.UserID, string(rp.Profile), timeValue(rp.UpdatedAt))
		}
		return err
	})
	if err != nil {
		return store.Session{}, store.User{}, fmt.Errorf("sqlite: start session: %w", mapRefErr(err))
	}
	return sess, u, nil
}

// RevokeSession implements store.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time) (store.Session, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Session{}, fmt.Errorf("sqlite: revoke session %q: %w", id, store.ErrNotFound)
	}
	var x store.Session
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		x, err = scanSession(tx.tx.QueryRowContext(ctx, "SELECT "+sqlrow.SessionColumns+" FROM sessions WHERE id = ?", canon))
		if err != nil || !x.RevokedAt.IsZero() {
			return err
		}
		x, err = tx.revokeFamily(ctx, canon, reason, now)
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: revoke session %s: %w", canon, mapErr(err))
	}
	return x, nil
}

// revokeFamily revokes the session id and every token of its family, in
// the transaction tx, and returns the session.
func (tx *Store) revokeFamily(ctx context.Context, id, reason string, now time.Time) (store.Session, error) {
	x, err := scanSession(tx.tx.QueryRowContext(ctx, `UPDATE sessions SET revoked_at = ?, revoked_reason = ?
		WHERE id = ? RETURNING `+sqlrow.SessionColumns, timeValue(now), sqlrow.Null(reason), id))
	if err != nil {
		return store.Session{}, err
	}
	return x, tx.revokeTokens(ctx, []string{id}, now)
}

// revokeTokens revokes every live token of the sessions, in the
// transaction tx, and clears their sealed successors.
func (tx *Store) revokeTokens(ctx context.Context, sessionIDs []string, now time.Time) error {
	if len(sessionIDs) == 0 {
		return nil
	}
	_, err := tx.tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, ?2), sealed_successor = NULL
		WHERE session_id IN (SELECT value FROM json_each(?1)) AND (revoked_at IS NULL OR sealed_successor IS NOT NULL)`,
		sqlrow.EncodeList(sessionIDs), timeValue(now))
	return err
}

// revokeSessions revokes the sessions live at now that match where, and
// their tokens, and returns their IDs, sorted. In where, ?1 is now, ?2 the
// reason and args are ?3 on.
func (s *Store) revokeSessions(ctx context.Context, now time.Time, reason, where string, args ...any) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *Store) error {
		rows, err := tx.tx.QueryContext(ctx, `UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
			WHERE revoked_at IS NULL AND expires_at > ?1 AND `+where+` RETURNING id`,
			append([]any{timeValue(now), sqlrow.Null(reason)}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.revokeTokens(ctx, ids, now)
	})
	slices.Sort(ids)
	return ids, err
}

// RevokeUserSessions implements store.SessionStore. Live means neither
// revoked nor expired at now. An except that is not a UUID excepts nothing.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, except, reason string, now time.Time) ([]string, error) {
	canon, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has sessions
	}
	var keep *string
	if c, ok := sqlrow.ParseID(except); ok {
		keep = &c
	}
	ids, err := s.revokeSessions(ctx, now, reason, "user_id = ?3 AND id IS NOT ?4", canon, keep)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoke sessions of user %s: %w", canon, mapErr(err))
	}
	return ids, nil
}

// RevokeSessionsCreatedBefore implements store.SessionStore. Live means
// neither revoked nor expired at now.
func (s *Store) RevokeSessionsCreatedBefore(ctx context.Context, t time.Time, reason string, now time.Time) (int64, error) {
	ids, err := s.revokeSessions(ctx, now, reason, "created_at < ?3", timeValue(t))
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke sessions created before %s: %w", t.UTC().Format(time.RFC3339), mapErr(err))
	}
	return int64(len(ids)), nil
}

// RotateRefreshToken implements store.SessionStore in one IMMEDIATE
// transaction (the caller's, inside InTx): it holds the database's write
// lock from before the presented token is read until the outcome is
// committed, so of concurrent calls with one token the first rotates it and
// the others find it rotated. sqlrow.ClassifyRotation has the rules.
func (s *Store) RotateRefreshToken(ctx context.Context, r store.RotateRequest) (store.RotateResult, error) {
	r, err := sqlrow.PrepareRotateRequest(r, s.now())
	if err != nil {
		return store.RotateResult{}, fmt.Errorf("sqlite: %w", err)
	}
	if !sqlrow.Storable(r.PresentedHash) {
		return store.RotateResult{}, fmt.Errorf("sqlite: rotate refresh token: %w", store.ErrNotFound)
	}
	var res store.RotateResult
	err = s.inTx(ctx, func(tx *Store) error {
		var err error
		res, err = tx.rotate(ctx, r)
		return err
	})
	if err != nil {
		return store.RotateResult{}, fmt.Errorf("sqlite: rotate refresh token: %w", mapErr(err))
	}
	return res, nil
}

func (tx *Store) rotate(ctx context.Context, r store.RotateRequest) (store.RotateResult, error) {
	var res store.RotateResult
	tok, err := scanRefreshToken(tx.tx.QueryRowContext(ctx, "SELECT "+sqlrow.RefreshTokenColumns+
		" FROM refresh_tokens WHERE token_hash = ?", r.PresentedHash))
	if err != nil {
		return res, err
	}
	sess, err := scanSession(tx.tx.QueryRowContext(ctx, "SELECT "+sqlrow.SessionColumns+" FROM sessions WHERE id = ?", tok.SessionID))
	if err != nil {
		return res, err
	}
	var (
		succ  store.RefreshToken
		found bool
	)
	if !tok.RotatedAt.IsZero() && tok.SuccessorID != "" {
		succ, err = scanRefreshToken(tx.tx.QueryRowContext(ctx, "SELECT "+sqlrow.RefreshTokenColumns+
			" FROM refresh_tokens WHERE id = ?", tok.SuccessorID))
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, sql.ErrNoRows):
			return res, err
		}
	}

	res = store.RotateResult{
		Outcome: sqlrow.ClassifyRotation(tok, sess, succ, found, r), Previous: tok, Session: sess,
		PreviousIP: sess.IP, PreviousSeenAt: sess.LastSeenAt,
	}
	switch res.Outcome {
	case store.Rotated:
		next, err := sqlrow.Successor(tok, r)
		if err != nil {
			return res, err
		}
		if res.Issued, err = scanRefreshToken(tx.tx.QueryRowContext(ctx, insertRefreshToken, sqlrow.RefreshTokenValues(next, timeValue)...)); err != nil {
			return res, err
		}
		if res.Previous, err = scanRefreshToken(tx.tx.QueryRowContext(ctx, `UPDATE refresh_tokens
			SET rotated_at = ?, successor_id = ?, sealed_successor = ?
			WHERE id = ? RETURNING `+sqlrow.RefreshTokenColumns,
			timeValue(r.Now), next.ID, sqlrow.Null(r.SealedNext), tok.ID)); err != nil {
			return res, err
		}
		// The parent's successor (tok) is rotated now, so the parent can
		// never be replayed again: its sealed successor has done its job.
		if tok.ParentID != "" {
			if _, err := tx.tx.ExecContext(ctx, "UPDATE refresh_tokens SET sealed_successor = NULL WHERE id = ? AND sealed_successor IS NOT NULL",
				tok.ParentID); err != nil {
				return res, err
			}
		}
		res.Session, err = scanSession(tx.tx.QueryRowContext(ctx, `UPDATE sessions SET last_seen_at = ?, ip = coalesce(?, ip)
			WHERE id = ? RETURNING `+sqlrow.SessionColumns, timeValue(r.Now), sqlrow.Null(r.LastSeenIP), sess.ID))
		return res, err
	case store.ReuseDetected:
		res.Previous.SealedSuccessor = ""
		res.Session, err = tx.revokeFamily(ctx, sess.ID, sqlrow.ReasonRefreshTokenReuse, r.Now)
		return res, err
	case store.ClientMismatch:
		res.Previous.SealedSuccessor = ""
		res.Session, err = tx.revokeFamily(ctx, sess.ID, sqlrow.ReasonClientMismatch, r.Now)
		return res, err
	case store.Invalid, store.ScopeNotGranted:
		res.Previous.SealedSuccessor = ""
	}
	return res, nil
}

// PurgeSessions implements store.SessionStore in one transaction.
func (s *Store) PurgeSessions(ctx context.Context, before time.Time) (int64, error) {
	b := timeValue(before)
	var n int64
	err := s.inTx(ctx, func(tx *Store) error {
		res, err := tx.tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1", b)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE expires_at < ?", b); err != nil {
			return err
		}
		_, err = tx.tx.ExecContext(ctx, "UPDATE refresh_tokens SET sealed_successor = NULL WHERE sealed_successor IS NOT NULL AND rotated_at < ?", b)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge sessions: %w", mapErr(err))
	}
	return n, nil
}
