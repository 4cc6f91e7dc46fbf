package app

import (
	"github.com/gatehouse/gatehouse/internal/admin"
	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// Each domain sees the backend through its own narrow store, whose
// transactions publish on bus. The conversions from a transaction's
// store (event.Tx) to a domain's Tx are checked by the compiler: a method
// a domain needs that the backends lack fails the build.

func sessionStore(st store.Store, bus *event.Bus) session.Store {
	return event.Narrow(st, bus, func(tx event.Tx) session.Tx { return tx })
}

// riskProfiles is the store of the users' risk profiles, read and written
// by sign-in outside its transactions.
func riskProfiles(st store.Store) session.RiskProfiles { return st }

func mfaStore(st store.Store, bus *event.Bus) mfa.Store {
	return event.Narrow(st, bus, func(tx event.Tx) mfa.Tx { return tx })
}

func socialStore(st store.Store, bus *event.Bus) social.Store {
	return event.Narrow(st, bus, func(tx event.Tx) social.Tx { return tx })
}

func userStore(st store.Store, bus *event.Bus) user.Store {
	return event.Narrow(st, bus, func(tx event.Tx) user.Tx { return tx })
}

func apiStore(st store.Store) apis.Store {
	return store.Narrow(st, func(tx store.Store) apis.Tx { return tx })
}

func adminStore(st store.Store, bus *event.Bus) admin.Store {
	return event.Narrow(st, bus, func(tx event.Tx) admin.Tx { return tx })
}
