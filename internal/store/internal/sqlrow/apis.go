package sqlrow

import (
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// APIColumns is the column list ScanAPI expects, in order; the values
// APIValues returns are in the same order.
const APIColumns = "id, identifier, name, scopes, created_at, updated_at"

// ScanAPI scans one row selected with APIColumns. Empty Scopes come back
// nil.
func ScanAPI(s Scanner, td TimeDest, ld ListDest) (store.API, error) {
	var a store.API
	if err := s.Scan(&a.ID, &a.Identifier, &a.Name, ld(&a.Scopes), td(&a.CreatedAt), td(&a.UpdatedAt)); err != nil {
		return store.API{}, err
	}
	a.Scopes = nilIfEmpty(a.Scopes)
	utc(&a.CreatedAt, &a.UpdatedAt)
	return a, nil
}

// APIValues returns the values of the APIColumns columns of an API
// PrepareAPI returned, in order.
func APIValues(a store.API, tv TimeValue, lv ListValue) []any {
	return []any{a.ID, a.Identifier, a.Name, lv(a.Scopes), tv(a.CreatedAt), tv(a.UpdatedAt)}
}

// PrepareAPI validates a for CreateAPI or UpdateAPI and fills in its times:
// CreatedAt (now when zero) and UpdatedAt (CreatedAt when zero), to the
// microsecond.
func PrepareAPI(a store.API, now time.Time) (store.API, error) {
	switch {
	case a.ID == "" || a.Identifier == "" || a.Name == "":
		return a, errors.New("api: ID, Identifier and Name are required")
	case !validText(a.ID) || !validText(a.Identifier) || !validText(a.Name):
		return a, errors.New("api: ID, Identifier and Name must be UTF-8 text without NUL")
	}
	var err error
	if a.Scopes, err = prepareList("api: Scopes", a.Scopes); err != nil {
		return a, err
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = a.CreatedAt
	}
	a.CreatedAt, a.UpdatedAt = Micro(a.CreatedAt), Micro(a.UpdatedAt)
	return a, nil
}
