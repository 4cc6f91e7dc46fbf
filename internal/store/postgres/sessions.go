package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// Lock order. Every write to a session's refresh token family (rotation,
// reuse detection, revocation) runs in a transaction that first locks the
// session row and only then touches the family's token rows. So these
// writers never deadlock, and a revocation waiting for a rotation's session
// lock runs its token UPDATE after the rotation committed, with a snapshot
// that includes the token the rotation inserted (under READ COMMITTED a
// single statement would miss it). Bulk revocations lock their sessions in
// ID order; the purge skips locked rows instead of waiting.

// listDest scans a text[] column: pgx decodes it into *[]string.
func listDest(l *[]string) any { return l }

// listValue binds a list as text[]; sqlrow never hands it nil, which pgx
// would bind as NULL.
func listValue(l []string) any { return l }

func scanSession(row sqlrow.Scanner) (store.Session, error) {
	return sqlrow.ScanSession(row, timeDest, nullTimeDest, listDest)
}

func scanRefreshToken(row sqlrow.Scanner) (store.RefreshToken, error) {
	return sqlrow.ScanRefreshToken(row, timeDest, nullTimeDest)
}

// placeholders returns "$1, $2, …, $n".
func placeholders(n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("$%d", i+1)
	}
	return strings.Join(p, ", ")
}

var (
	insertSession = `INSERT INTO sessions (` + sqlrow.SessionColumns + `)
		VALUES (` + placeholders(sqlrow.SessionColumnCount) + `) RETURNING ` + sqlrow.SessionColumns
	insertRefreshToken = `INSERT INTO refresh_tokens (` + sqlrow.RefreshTokenColumns + `)
		VALUES (` + placeholders(14) + `) RETURNING ` + sqlrow.RefreshTokenColumns
)

// mapRefErr is mapErr that also maps a foreign key violation (a session
// for a user, or a token for a session, that does not exist) to
// store.ErrNotFound.
func mapRefErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
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
		return store.Session{}, fmt.Errorf("postgres: create session: %w", err)
	}
	var created store.Session
	err = s.inTx(ctx, func(tx *Store) error {
		var err error
		if created, err = scanSession(tx.q.QueryRow(ctx, insertSession, sqlrow.SessionValues(x, timeValue, listValue)...)); err != nil {
			return err
		}
		_, err = tx.q.Exec(ctx, insertRefreshToken, sqlrow.RefreshTokenValues(first, timeValue)...)
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: create session: %w", mapRefErr(err))
	}
	return created, nil
}

// recordLogin sets the user's last_login_at (and password hash, when
// hash is set) and locks the row of a user neither deleted nor disabled;
// $1 the user, $2 the time, $3 the hash, $4 updated_at, $5 the hash the
// password was checked against (if any), which must still be the user's,
// and then no password reset may be required.
const recordLogin = `UPDATE users SET last_login_at = $2, password_hash = COALESCE($3, password_hash), updated_at = $4
	WHERE id = $1 AND deleted_at IS NULL AND status <> 'disabled'
		AND ($5::text IS NULL OR (password_hash = $5 AND password_reset_required_at IS NULL))
	RETURNING ` + sqlrow.UserColumns

// signInGuard ends the INSERT … SELECT statements of StartSession: they
// write only if recordLogin, run first in the same transaction, found the
// user. Its parameters, from $n on, are recordLogin's $1 (the user), $5
// (the checked hash) and $3 (the new hash): the user's row, which
// recordLogin locked if it found it, must be neither deleted nor disabled
// and hold the checked hash, or the new hash recordLogin wrote over it,
// without a password reset required.
func signInGuard(n int) string {
	return fmt.Sprintf(` WHERE EXISTS (SELECT 1 FROM users WHERE id = $%d AND deleted_at IS NULL AND status <> 'disabled'
		AND ($%d::text IS NULL OR (password_hash = COALESCE($%d, $%d) AND password_reset_required_at IS NULL)))`, n, n+1, n+2, n+1)
}

var (
	startSessionInsert = `INSERT INTO sessions (` + sqlrow.SessionColumns + `)
		SELECT ` + placeholders(sqlrow.SessionColumnCount) + signInGuard(sqlrow.SessionColumnCount+1) + ` RETURNING ` + sqlrow.SessionColumns
	startSessionToken = `INSERT INTO refresh_tokens (` + sqlrow.RefreshTokenColumns + `)
		SELECT ` + placeholders(14) + signInGuard(15)
	startSessionEvent = auditEventInto + ` SELECT ` + auditEventParams + signInGuard(10)
	startSessionRisk  = `INSERT INTO user_risk_profiles (` + sqlrow.RiskProfileColumns + `)
		SELECT $1, $2, $3` + signInGuard(4) + `
		ON CONFLICT (user_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at`
)

// StartSession implements store.SessionStore in one round trip (see
// pipeTx): BEGIN, recordLogin (which updates the user's row, and so locks
// it), the session, its first token and the event, each written only if
// recordLogin found the user (signInGuard), and COMMIT. For a deleted,
// disabled or unknown user, or one whose password changed since it was
// checked, the transaction commits having written nothing, and the answer
// is ErrNotFound.
func (s *Store) StartSession(ctx context.Context, in store.SignIn) (store.Session, store.User, error) {
	in, data, err := sqlrow.PrepareSignIn(in, s.now())
	if err != nil {
		return store.Session{}, store.User{}, fmt.Errorf("postgres: start session: %w", err)
	}
	var (
		sess store.Session
		u    store.User
	)
	userID, checked, rehash := in.Session.UserID, sqlrow.Null(in.CheckedPasswordHash), sqlrow.Null(in.PasswordHash)
	err = s.pipelined(ctx, func(p *pipeTx) error {
		b := &pgx.Batch{}
		b.Queue(recordLogin, userID, in.Session.CreatedAt, rehash, sqlrow.Micro(s.now()), checked)
		b.Queue(startSessionInsert, append(sqlrow.SessionValues(in.Session, timeValue, listValue), userID, checked, rehash)...)
		b.Queue(startSessionToken, append(sqlrow.RefreshTokenValues(in.First, timeValue), userID, checked, rehash)...)
		b.Queue(startSessionEvent, append(auditEventValues(in.Event, data), userID, checked, rehash)...)
		execs := 2
		if rp := in.RiskProfile; rp != nil {
			b.Queue(startSessionRisk, rp.UserID, string(rp.Profile), timeValue(rp.UpdatedAt), userID, checked, rehash)
			execs++
		}
		return p.send(ctx, b, true, func(br pgx.BatchResults) error {
			var err error
			if u, err = scanUser(br.QueryRow()); err != nil {
				return err // ErrNoRows: the other statements wrote nothing
			}
			if sess, err = scanSession(br.QueryRow()); err != nil {
				return err
			}
			for range execs {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return store.Session{}, store.User{}, fmt.Errorf("postgres: start session: %w", mapRefErr(err))
	}
	return sess, u, nil
}

// RevokeSession implements store.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time) (store.Session, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Session{}, fmt.Errorf("postgres: revoke session %q: %w", id, store.ErrNotFound)
	}
	var x store.Session
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		x, err = scanSession(tx.q.QueryRow(ctx, "SELECT "+sqlrow.SessionColumns+" FROM sessions WHERE id = $1 FOR UPDATE", canon))
		if err != nil || !x.RevokedAt.IsZero() {
			return err
		}
		x, err = tx.revokeFamily(ctx, canon, reason, sqlrow.Micro(now))
		return err
	})
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: revoke session %s: %w", canon, mapErr(err))
	}
	return x, nil
}

// Revoking a session and every token of its family: $1 the session (or
// sessions), $2 the time, $3 the reason.
const (
	revokeSessionSQL = `UPDATE sessions SET revoked_at = $2, revoked_reason = $3
		WHERE id = $1 RETURNING ` + sqlrow.SessionColumns
	revokeTokensSQL = `UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $2), sealed_successor = NULL
		WHERE session_id = ANY($1::uuid[]) AND (revoked_at IS NULL OR sealed_successor IS NOT NULL)`
)

// revokeFamily revokes the session id, which the transaction tx has
// locked, and every token of its family, and returns the session.
func (tx *Store) revokeFamily(ctx context.Context, id, reason string, now time.Time) (store.Session, error) {
	x, err := scanSession(tx.q.QueryRow(ctx, revokeSessionSQL, id, now, sqlrow.Null(reason)))
	if err != nil {
		return store.Session{}, err
	}
	return x, tx.revokeTokens(ctx, []string{id}, now)
}

// revokeTokens revokes every live token of the sessions, which the
// transaction tx has locked, and clears their sealed successors.
func (tx *Store) revokeTokens(ctx context.Context, sessionIDs []string, now time.Time) error {
	if len(sessionIDs) == 0 {
		return nil
	}
	_, err := tx.q.Exec(ctx, revokeTokensSQL, sessionIDs, now)
	return err
}

// revokeSessions revokes the sessions live at now that match where, and
// their tokens, and returns their IDs, sorted. In where, $1 is now, $2
// the reason and args are $3 on.
func (s *Store) revokeSessions(ctx context.Context, now time.Time, reason, where string, args ...any) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *Store) error {
		rows, err := tx.q.Query(ctx, `WITH target AS (
				SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 AND `+where+`
				ORDER BY id FOR UPDATE
			)
			UPDATE sessions SET revoked_at = $1, revoked_reason = $2 FROM target
			WHERE sessions.id = target.id RETURNING sessions.id`,
			append([]any{now, sqlrow.Null(reason)}, args...)...)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
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
	var ids []string
	err := s.inTx(ctx, func(tx *Store) error {
		// The user's row first, as StartSession locks it: a sign-in being
		// recorded now commits before the sessions are read, and its session
		// ends with the others.
		if _, err := tx.q.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", canon); err != nil {
			return err
		}
		var err error
		ids, err = tx.revokeSessions(ctx, sqlrow.Micro(now), reason, "user_id = $3 AND id IS DISTINCT FROM $4::uuid", canon, keep)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: revoke sessions of user %s: %w", canon, mapErr(err))
	}
	return ids, nil
}

// RevokeSessionsCreatedBefore implements store.SessionStore. Live means
// neither revoked nor expired at now.
func (s *Store) RevokeSessionsCreatedBefore(ctx context.Context, t time.Time, reason string, now time.Time) (int64, error) {
	ids, err := s.revokeSessions(ctx, sqlrow.Micro(now), reason, "created_at < $3", sqlrow.Micro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke sessions created before %s: %w", t.UTC().Format(time.RFC3339), mapErr(err))
	}
	return int64(len(ids)), nil
}

// RotateRefreshToken implements store.SessionStore in one transaction of
// two round trips (see pipeTx). The first locks the session row, then the
// presented token's row (SELECT … FOR UPDATE), and reads its successor;
// of concurrent calls with one token, the first rotates it (or revokes its
// family) and the others, waiting for the session lock, then read it
// rotated (or revoked). Go decides
// (sqlrow.ClassifyRotation has the rules), and the second round trip
// writes the outcome and commits.
func (s *Store) RotateRefreshToken(ctx context.Context, r store.RotateRequest) (store.RotateResult, error) {
	r, err := sqlrow.PrepareRotateRequest(r, s.now())
	if err != nil {
		return store.RotateResult{}, fmt.Errorf("postgres: %w", err)
	}
	if !sqlrow.Storable(r.PresentedHash) {
		return store.RotateResult{}, fmt.Errorf("postgres: rotate refresh token: %w", store.ErrNotFound)
	}
	var res store.RotateResult
	err = s.pipelined(ctx, func(p *pipeTx) error {
		var done bool
		var err error
		if res, done, err = rotateLive(ctx, p, r); err != nil || done {
			return err
		}
		// Not a live token, or not one to rotate as asked: a new
		// transaction reads it and decides (grace replay, reuse, invalid,
		// client mismatch, scope not granted), which rotateLive never does.
		p.reopen()
		res, err = rotate(ctx, p, r)
		return err
	})
	if err != nil {
		return store.RotateResult{}, fmt.Errorf("postgres: rotate refresh token: %w", mapErr(err))
	}
	return res, nil
}

// lockSessionOfToken locks the session of the token whose hash is $1.
// A token never moves to another session, so finding the session through
// the token unlocked is safe; the locks are taken in the family's order
// (session, then tokens).
const lockSessionOfToken = "SELECT " + sqlrow.SessionColumns + ` FROM sessions
	WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) FOR UPDATE`

// rotateLive rotates a live token in one round trip, the common case:
// BEGIN, the session lock, one statement that rotates the token only if
// ClassifyRotation would answer Rotated, and COMMIT. The statement starts
// once the lock is granted, so (READ COMMITTED) it sees everything the
// lock's previous holders did to the family. done is false when it wrote
// nothing because the token or its session is not live, or the client or
// scope asked for does not fit it: rotate decides then, in a new
// transaction. Inside an enclosing transaction nothing is
// committed and rotate goes on in it. The session row the lock returns
// is the session before the rotation: its IP and last_seen_at are the
// result's PreviousIP and PreviousSeenAt.
func rotateLive(ctx context.Context, p *pipeTx, r store.RotateRequest) (res store.RotateResult, done bool, err error) {
	idle := r.Next.IdleExpiresAt
	if r.IdleTimeout > 0 {
		idle = r.Now.Add(r.IdleTimeout)
	}
	var sessionErr error
	b := &pgx.Batch{}
	b.Queue(lockSessionOfToken, r.PresentedHash)
	// NULL skips the client check ("" is a first-party token's client);
	// a nil Scopes binds NULL, which skips the scope check.
	var client any
	if r.CheckClient {
		client = r.Client
	}
	b.Queue(rotateLiveSQL, r.PresentedHash, r.Now, r.Next.ID, r.Next.TokenHash, timeValue(idle),
		sqlrow.Null(r.SealedNext), sqlrow.Null(r.LastSeenIP), client, r.Scopes)
	err = p.send(ctx, b, true, func(br pgx.BatchResults) error {
		res.Session, sessionErr = scanSession(br.QueryRow())
		if sessionErr != nil && !errors.Is(sessionErr, pgx.ErrNoRows) {
			return sessionErr
		}
		var err error
		res.Issued, res.Previous, err = readRotationWrites(br, r.Next.ID, true)
		return err
	})
	switch {
	case err != nil:
		return store.RotateResult{}, true, err
	case sessionErr != nil: // no such token (or its session is gone): ErrNoRows
		return store.RotateResult{}, true, sessionErr
	case res.Issued.ID == "":
		return store.RotateResult{}, false, nil
	}
	res.Outcome = store.Rotated
	res.PreviousIP, res.PreviousSeenAt = res.Session.IP, res.Session.LastSeenAt
	res.Session.LastSeenAt = r.Now
	if r.LastSeenIP != "" {
		res.Session.IP = r.LastSeenIP
	}
	return res, true, nil
}

// readRotationWrites reads the rows of rotateWrites or rotateLiveSQL: the
// successor (id nextID) and the token it replaces (whose successor it is);
// the parent's row, also updated, is skipped. None at all is no error
// when maybeNone.
func readRotationWrites(br pgx.BatchResults, nextID string, maybeNone bool) (issued, previous store.RefreshToken, err error) {
	rows, err := br.Query()
	if err != nil {
		return issued, previous, err
	}
	written, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.RefreshToken, error) { return scanRefreshToken(row) })
	if err != nil {
		return issued, previous, err
	}
	for _, t := range written {
		switch {
		case t.ID == nextID:
			issued = t
		case t.SuccessorID == nextID:
			previous = t
		}
	}
	if (issued.ID == "" || previous.ID == "") && !(maybeNone && len(written) == 0) {
		return store.RefreshToken{}, store.RefreshToken{}, fmt.Errorf("rotation to %s wrote %d unexpected rows", nextID, len(written))
	}
	return issued, previous, nil
}

// rotateLiveSQL rotates the token whose hash is $1 at time $2 if it is live
// and may be rotated as asked (ClassifyRotation's Rotated: token and
// session neither revoked nor expired, the token neither rotated nor
// idle-expired, presented by its client $8 unless $8 is NULL, and every
// scope of $9, unless NULL, among its space-separated scopes). Like
// Successor and rotateWrites it inserts the successor ($3 its id, $4 its
// hash, $5 its idle expiry, capped at the absolute expiry it inherits),
// marks the token rotated with $6 as its sealed successor, clears the
// parent's sealed successor and records the session's last use ($7 the
// client's IP). Its rows are the inserted and updated tokens: none when
// the token is not rotatable, and rotate decides.
//
// A first-party token's client_id is NULL (sqlrow.Null stores "" so), read
// back as "": COALESCE compares as ClassifyRotation does. The scope test
// splits on spaces only where ClassifyRotation takes strings.Fields; as
// the asked scopes hold no white space (PrepareRotateRequest), a scope
// found here is found there too, and one missed here (a stored scope
// with other white space) goes to rotate, which decides in Go.
var rotateLiveSQL = `WITH live AS (
		SELECT t.id, t.session_id, t.user_id, t.client_id, t.scope, t.parent_id, t.expires_at
		FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.revoked_at IS NULL
			AND t.expires_at > $2 AND (t.idle_expires_at IS NULL OR t.idle_expires_at > $2)
			AND s.revoked_at IS NULL AND s.expires_at > $2
			AND ($8::text IS NULL OR COALESCE(t.client_id, '') = $8::text)
			AND ($9::text[] IS NULL OR $9::text[] <@ string_to_array(COALESCE(t.scope, ''), ' '))
	), successor AS (
		INSERT INTO refresh_tokens (` + sqlrow.RefreshTokenColumns + `)
		SELECT $3, session_id, user_id, client_id, scope, $4, id, $2, expires_at,
			CASE WHEN $5::timestamptz > expires_at THEN expires_at ELSE $5::timestamptz END,
			NULL, NULL, NULL, NULL
		FROM live
		RETURNING ` + sqlrow.RefreshTokenColumns + `
	), rotated AS (
		UPDATE refresh_tokens r SET
			rotated_at = CASE WHEN r.id = live.id THEN $2 ELSE r.rotated_at END,
			successor_id = CASE WHEN r.id = live.id THEN $3::uuid ELSE r.successor_id END,
			sealed_successor = CASE WHEN r.id = live.id THEN $6 END
		FROM live
		WHERE r.id = live.id OR (r.id = live.parent_id AND r.sealed_successor IS NOT NULL)
		RETURNING ` + qualifiedColumns("r", sqlrow.RefreshTokenColumns) + `
	), seen AS (
		UPDATE sessions SET last_seen_at = $2, ip = COALESCE($7, ip) WHERE id = (SELECT session_id FROM live)
	)
	SELECT * FROM successor UNION ALL SELECT * FROM rotated`

func rotate(ctx context.Context, p *pipeTx, r store.RotateRequest) (store.RotateResult, error) {
	var (
		res        store.RotateResult
		sess       store.Session
		tok, succ  store.RefreshToken
		found      bool
		sessionErr error
	)
	b := &pgx.Batch{}
	b.Queue(lockSessionOfToken, r.PresentedHash)
	// The token, locked, with what ClassifyRotation needs of its successor.
	b.Queue(`SELECT `+qualifiedTokenColumns+`, n.id IS NOT NULL, n.rotated_at, n.revoked_at
		FROM refresh_tokens t LEFT JOIN refresh_tokens n ON n.id = t.successor_id
		WHERE t.token_hash = $1 FOR UPDATE OF t`, r.PresentedHash)
	err := p.send(ctx, b, false, func(br pgx.BatchResults) error {
		sess, sessionErr = scanSession(br.QueryRow())
		var tokErr error
		tok, tokErr = scanRefreshToken(sqlrow.WithExtra(br.QueryRow(), &found, nullTimeDest(&succ.RotatedAt), nullTimeDest(&succ.RevokedAt)))
		for _, err := range []error{sessionErr, tokErr} {
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if sessionErr == nil {
			// Found a moment ago, but the purge (which does not wait for
			// the session's lock) may have deleted it since if expired.
			sessionErr = tokErr
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if sessionErr != nil { // no such token (or its session is gone): ErrNoRows
		return res, sessionErr
	}

	res = store.RotateResult{
		Outcome: sqlrow.ClassifyRotation(tok, sess, succ, found, r), Previous: tok, Session: sess,
		PreviousIP: sess.IP, PreviousSeenAt: sess.LastSeenAt,
	}
	b = &pgx.Batch{}
	var read func(pgx.BatchResults) error
	switch res.Outcome {
	case store.Rotated:
		next, err := sqlrow.Successor(tok, r)
		if err != nil {
			return res, err
		}
		// One statement writes the rotation: it inserts the successor,
		// marks tok rotated and clears its parent's sealed successor (tok
		// is rotated now, so the parent can never be replayed again and
		// its sealed successor has done its job), and records the
		// session's last use. Its rows are the inserted and updated tokens.
		args := append(sqlrow.RefreshTokenValues(next, timeValue),
			tok.ID, r.Now, sqlrow.Null(r.SealedNext), sqlrow.Null(tok.ParentID), sess.ID, sqlrow.Null(r.LastSeenIP))
		b.Queue(rotateWrites, args...)
		read = func(br pgx.BatchResults) error {
			var err error
			if res.Issued, res.Previous, err = readRotationWrites(br, next.ID, false); err != nil {
				return err
			}
			res.Session.LastSeenAt = r.Now
			if r.LastSeenIP != "" {
				res.Session.IP = r.LastSeenIP
			}
			return nil
		}
	case store.ReuseDetected:
		res.Previous.SealedSuccessor = ""
		queueRevokeFamily(b, sess.ID, sqlrow.ReasonRefreshTokenReuse, r.Now)
		read = func(br pgx.BatchResults) error {
			var err error
			res.Session, err = readRevokeFamily(br)
			return err
		}
	case store.ClientMismatch:
		res.Previous.SealedSuccessor = ""
		queueRevokeFamily(b, sess.ID, sqlrow.ReasonClientMismatch, r.Now)
		read = func(br pgx.BatchResults) error {
			var err error
			res.Session, err = readRevokeFamily(br)
			return err
		}
	case store.Invalid, store.ScopeNotGranted:
		res.Previous.SealedSuccessor = ""
	}
	return res, p.send(ctx, b, true, read)
}

// queueRevokeFamily queues revokeFamily's statements; readRevokeFamily
// reads their results.
func queueRevokeFamily(b *pgx.Batch, id, reason string, now time.Time) {
	b.Queue(revokeSessionSQL, id, now, sqlrow.Null(reason))
	b.Queue(revokeTokensSQL, []string{id}, now)
}

func readRevokeFamily(br pgx.BatchResults) (store.Session, error) {
	x, err := scanSession(br.QueryRow())
	if err != nil {
		return store.Session{}, err
	}
	_, err = br.Exec()
	return x, err
}

// PurgeSessions implements store.SessionStore with three statements that
// skip rows locked by a concurrent rotation or revocation instead of
// waiting for them (and joining a possible deadlock); those are purged
// next time.
func (s *Store) PurgeSessions(ctx context.Context, before time.Time) (int64, error) {
	b := sqlrow.Micro(before)
	tag, err := s.q.Exec(ctx, `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 FOR UPDATE SKIP LOCKED)`, b)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge sessions: %w", mapErr(err))
	}
	if _, err := s.q.Exec(ctx, `DELETE FROM refresh_tokens WHERE id IN (
		SELECT id FROM refresh_tokens WHERE expires_at < $1 FOR UPDATE SKIP LOCKED)`, b); err != nil {
		return 0, fmt.Errorf("postgres: purge refresh tokens: %w", mapErr(err))
	}
	if _, err := s.q.Exec(ctx, `UPDATE refresh_tokens SET sealed_successor = NULL WHERE id IN (
		SELECT id FROM refresh_tokens WHERE sealed_successor IS NOT NULL AND rotated_at < $1 FOR UPDATE SKIP LOCKED)`, b); err != nil {
		return 0, fmt.Errorf("postgres: purge sealed successors: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}

// qualifiedTokenColumns is sqlrow.RefreshTokenColumns of the table aliased t.
var qualifiedTokenColumns = qualifiedColumns("t", sqlrow.RefreshTokenColumns)

// qualifiedColumns qualifies each of a comma-separated column list with alias.
func qualifiedColumns(alias, columns string) string {
	return alias + "." + strings.ReplaceAll(columns, ", ", ", "+alias+".")
}

// rotateWrites is the write of a rotation: $1–$14 the successor's
// RefreshTokenColumns, $15 the rotated token, $16 the time, $17 its sealed
// successor, $18 its parent, $19 the session, $20 the client's IP.
// Data-modifying CTEs all run, referenced or not.
var rotateWrites = `WITH successor AS (
		INSERT INTO refresh_tokens (` + sqlrow.RefreshTokenColumns + `) VALUES (` + placeholders(14) + `)
		RETURNING ` + sqlrow.RefreshTokenColumns + `
	), rotated AS (
		UPDATE refresh_tokens SET
			rotated_at = CASE WHEN id = $15 THEN $16 ELSE rotated_at END,
			successor_id = CASE WHEN id = $15 THEN $1 ELSE successor_id END,
			sealed_successor = CASE WHEN id = $15 THEN $17 END
		WHERE id = $15 OR (id = $18 AND sealed_successor IS NOT NULL)
		RETURNING ` + sqlrow.RefreshTokenColumns + `
	), seen AS (
		UPDATE sessions SET last_seen_at = $16, ip = COALESCE($20, ip) WHERE id = $19
	)
	SELECT * FROM successor UNION ALL SELECT * FROM rotated`
