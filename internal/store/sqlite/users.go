package sqlite

import (
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The user methods are shared with PostgreSQL (sqldb); StartSession scans
// the user it signs in with this.
func scanUser(row sqlrow.Scanner) (store.User, error) {
	return sqlrow.ScanUser(row, timeDest, nullTimeDest)
}
