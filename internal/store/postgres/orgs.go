package postgres

import (
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The organisation methods are shared with SQLite (sqldb); SecondFactors
// reads a user's organisations in its batch with these.

func scanOrganization(row sqlrow.Scanner) (store.Organization, error) {
	return sqlrow.ScanOrganization(row, timeDest)
}

// userOrganizations selects the organisations of user $1.
const userOrganizations = "SELECT " + sqlrow.OrganizationColumns + ` FROM organizations
	WHERE id IN (SELECT org_id FROM organization_members WHERE user_id = $1)
	ORDER BY name COLLATE "C", id`
