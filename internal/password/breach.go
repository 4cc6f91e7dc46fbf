package password

import (
	"context"
	"errors"
)

// BreachChecker reports whether a password is known from data breaches.
// An error means the answer is unknown (a file unreadable, an API down).
type BreachChecker interface {
	Breached(ctx context.Context, password string) (bool, error)
}

// MultiChecker asks each checker in turn and reports a password breached as
// soon as one does. If none does and some failed, it returns false and
// their errors joined.
type MultiChecker []BreachChecker

// Breached implements BreachChecker.
func (m MultiChecker) Breached(ctx context.Context, password string) (bool, error) {
	var errs []error
	for _, c := range m {
		breached, err := c.Breached(ctx, password)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if breached {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}
