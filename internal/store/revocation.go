package store

import (
	"context"
	"time"
)

// Kinds of Denial.
const (
	// DenySession refuses every access token of a session.
	DenySession = "session"
	// DenyToken refuses one access token without a session, by its jti.
	DenyToken = "token"
)

// Denial is the durable record that access tokens are refused: those of a
// session, or one token by its jti, until Until (when the last of them has
// expired anyway).
type Denial struct {
	Kind  string // DenySession or DenyToken
	ID    string // the session ID or the jti
	Until time.Time
}

// RevocationStore is the durable side of access-token revocation. The kv
// store (Redis) holds a cache of it that every node reads per request; when
// that cache has lost its data, it is rebuilt from here.
type RevocationStore interface {
	// RevocationEpoch returns the deployment's revocation epoch: a random
	// value fixed when the schema was created. The kv cache is marked with
	// it once rebuilt, so a cache that lost its data (or belongs to another
	// database) is told apart from one that is complete.
	RevocationEpoch(ctx context.Context) (string, error)
	// RaiseRevokeBefore sets the kill-switch time to t unless a later one
	// is stored (it never moves back), in one atomic statement, and returns
	// the time stored afterwards. Times are kept to the microsecond.
	RaiseRevokeBefore(ctx context.Context, t time.Time) (time.Time, error)
	// RevokeBefore returns the kill-switch time; zero when none was set.
	RevokeBefore(ctx context.Context) (time.Time, error)
	// AddDenial records d; for a Kind and ID already recorded the later
	// Until is kept. Kind must be DenySession or DenyToken and ID non-empty.
	AddDenial(ctx context.Context, d Denial) error
	// ListDenials returns every denial still in force at now (Until after
	// now): those recorded with AddDenial and, for each session revoked
	// after now-window, a DenySession until its RevokedAt+window (the
	// session's revocation is durable on its own even if AddDenial never
	// ran). A session in both is listed once, with the later Until.
	ListDenials(ctx context.Context, now time.Time, window time.Duration) ([]Denial, error)
	// PurgeDenials deletes the recorded denials that ended before before
	// and returns how many.
	PurgeDenials(ctx context.Context, before time.Time) (int64, error)
}
