package postgres

import (
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The user methods are shared with SQLite (sqldb); StartSession scans the
// user it signs in with this.
func scanUser(row sqlrow.Scanner) (store.User, error) {
	return sqlrow.ScanUser(row, timeDest, nullTimeDest)
}
