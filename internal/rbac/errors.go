package rbac

import (
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Errors of role-based access control administration. None wraps a store
// error, so that the error table answers each with its own code before the
// generic not_found and conflict rows.
var (
	// ErrRoleCycle is a change that would make a role its own ancestor.
	ErrRoleCycle = errors.New("rbac: role hierarchy cycle")
	// ErrBuiltinRole is a change to, or the deletion of, a built-in role.
	ErrBuiltinRole = errors.New("rbac: built-in role")
	// ErrPermissionInUse is the deletion of a permission a role allows or
	// denies.
	ErrPermissionInUse = errors.New("rbac: permission in use")
	// ErrRoleInUse is the deletion, without force, of a role that is
	// granted or is the parent of another role.
	ErrRoleInUse = errors.New("rbac: role in use")
	// ErrPermissionExists is the creation of a permission whose name is
	// taken.
	ErrPermissionExists = errors.New("rbac: permission exists")
	// ErrRoleExists is the creation or renaming of a role whose name is
	// taken in its scope.
	ErrRoleExists = errors.New("rbac: role name taken")
	// ErrInvalidCondition is a CEL condition the compiler refuses.
	ErrInvalidCondition = errors.New("rbac: invalid condition")
	// ErrBulkFailed is a bulk change with at least one invalid item:
	// nothing was changed.
	ErrBulkFailed = errors.New("rbac: bulk change failed")
	// ErrGrantNotFound is a grant that does not exist or is not the
	// user's.
	ErrGrantNotFound = errors.New("rbac: grant not found")
)

// Problem codes of the answers that carry field errors.
const (
	CodeRoleCycle        = "role_cycle"
	CodeInvalidCondition = "invalid_condition"
	CodeBulkFailed       = "bulk_failed"
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable. Validation failures that name fields (a cycle, an
// invalid condition, a failed bulk change) are answered as problems with
// those codes directly; these rows answer the same errors when they come
// without fields.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrRoleCycle, http.StatusUnprocessableEntity, CodeRoleCycle, "The role hierarchy would have a cycle."),
		httpapi.MapError(ErrBuiltinRole, http.StatusConflict, "built_in_role", "Built-in roles cannot be changed or deleted."),
		httpapi.MapError(ErrPermissionInUse, http.StatusConflict, "permission_in_use", "A role allows or denies this permission."),
		httpapi.MapError(ErrRoleInUse, http.StatusConflict, "role_in_use", "The role is granted or is the parent of another role; delete it with ?force=true."),
		httpapi.MapError(ErrPermissionExists, http.StatusConflict, "permission_exists", "A permission with this name exists already."),
		httpapi.MapError(ErrRoleExists, http.StatusConflict, "role_exists", "A role with this name exists already in its organisation (or among the global roles)."),
		httpapi.MapError(ErrInvalidCondition, http.StatusUnprocessableEntity, CodeInvalidCondition, "The condition does not compile."),
		httpapi.MapError(ErrBulkFailed, http.StatusUnprocessableEntity, CodeBulkFailed, "The bulk change has invalid items; nothing was changed."),
		httpapi.MapError(ErrGrantNotFound, http.StatusNotFound, "not_found", "The user has no grant with this ID."),
	}
}

// invalid is the 422 problem of invalid input with the given code.
func invalid(code, detail string, errs ...httpapi.FieldError) *httpapi.Problem {
	p := httpapi.Validation(errs...)
	p.Code = code
	if detail != "" {
		p.Detail = detail
	}
	return p
}
