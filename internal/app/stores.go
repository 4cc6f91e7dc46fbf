package app

import (
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// Each domain sees the backend through its own narrow store. The
// conversions from a transaction's store.Store to a domain's Tx are
// checked by the compiler: a method a domain needs that the backends lack
// fails the build.

func sessionStore(st store.Store) session.Store {
	return store.Narrow(st, func(tx store.Store) session.Tx { return tx })
}

func mfaStore(st store.Store) mfa.Store {
	return store.Narrow(st, func(tx store.Store) mfa.Tx { return tx })
}

func socialStore(st store.Store) social.Store {
	return store.Narrow(st, func(tx store.Store) social.Tx { return tx })
}

func userStore(st store.Store) user.Store {
	return store.Narrow(st, func(tx store.Store) user.Tx { return tx })
}
