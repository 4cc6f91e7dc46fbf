package authz

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Reasons of a Decision: stable codes.
const (
	// ReasonAllowed: an applicable grant's role allows the permission and
	// no applicable role denies it.
	ReasonAllowed = "allowed"
	// ReasonDeniedByRule: a deny rule of an applicable role matches the
	// permission (and its condition held, or failed to evaluate).
	ReasonDeniedByRule = "denied_by_rule"
	// ReasonNoMatchingGrant: no applicable grant's role has an allow rule
	// for the permission (there may be no grant at all, or only grants
	// outside their validity, of another organisation or whose roles lack
	// the permission).
	ReasonNoMatchingGrant = "no_matching_grant"
	// ReasonConditionFailed: a grant whose role allows the permission, or
	// an allow rule matching it, was left out because its condition was
	// false or failed to evaluate.
	ReasonConditionFailed = "condition_failed"
	// ReasonInvalidPermission: the permission asked for is not a valid
	// permission without wildcards.
	ReasonInvalidPermission = "invalid_permission"
	// ReasonInvalidRoleGraph: the hierarchy of an applicable grant's role
	// could not be resolved (a role missing from Input.Roles, or deeper
	// than MaxDepth), so a deny it may hold could not be ruled out.
	ReasonInvalidRoleGraph = "invalid_role_graph"
	// ReasonMissingTime: Input.Request.Time is zero.
	ReasonMissingTime = "missing_time"
)

// Grant gives the role RoleID to the subject: globally when
// OrganizationID is empty, otherwise for resources of that organisation
// only. ValidFrom and ValidUntil bound it when not zero (see Decide), and a
// non-empty Condition must evaluate to true for it to apply.
type Grant struct {
	ID             string
	RoleID         string
	OrganizationID string
	ValidFrom      time.Time
	ValidUntil     time.Time
	Condition      string
}

// Input is everything a decision depends on.
type Input struct {
	// Grants are the subject's grants, in any order.
	Grants []Grant
	// Roles holds at least the roles of the grants and all their
	// ancestors, by ID.
	Roles map[string]Role
	// Permission is asked for: "resource:action", without wildcards.
	Permission string
	Resource   Resource
	// Request is the request context; Request.Time is the instant of the
	// decision.
	Request Request
	User    User
	// Explain asks for Decision.Explain.
	Explain bool
}

// Match is a rule that decided: the grant it came through, the role that
// holds the rule and Via, the chain of role IDs from the granted role to
// that role.
type Match struct {
	GrantID string
	Role    string
	Via     []string
}

// Step is one thing considered, for an explanation: a grant (Role is the
// granted role) or a role reached from one, whether it applied and why.
type Step struct {
	Role    string
	GrantID string
	Applied bool
	Why     string
}

// Decision is the outcome of a check. Matched lists every allow rule that
// matched (also when a deny wins); DeniedBy is the first deny rule that
// matched. Orders are deterministic: grants by ID, then roles breadth
// first from the granted role, then rules in the order of the role.
type Decision struct {
	Allowed  bool
	Reason   string
	Matched  []Match
	DeniedBy *Match
	Explain  []Step
}

// Engine decides checks. It is safe for concurrent use.
type Engine struct {
	conditions *Compiler
}

// NewEngine returns an Engine that compiles and evaluates conditions with
// c (and shares its cache).
func NewEngine(c *Compiler) (*Engine, error) {
	if c == nil {
		return nil, errors.New("authz: NewEngine needs a Compiler")
	}
	return &Engine{conditions: c}, nil
}

// Decide decides whether the subject of in.Grants holds in.Permission on
// in.Resource. It is a pure function of in (and of the Compiler's limits).
//
// A grant applies when all of these hold:
//
//   - it is valid at in.Request.Time, compared at whole seconds (fractions
//     of a second dropped on all three): from the second of ValidFrom
//     included (no lower bound if zero) to the second of ValidUntil
//     excluded (no upper bound if zero), so a grant valid until 12:00:05
//     counts at 12:00:04.999 and not at 12:00:05.000;
//   - it is global, or its organisation is the resource's (a resource
//     without an organisation gets only global grants);
//   - its condition, if any, evaluates to true.
//
// For each grant that applies, Decide walks its role and the role's
// ancestors (a role of another organisation than the resource's, and what
// it inherits, is skipped). A deny rule matching the permission whose
// condition holds denies; an allow rule matching it whose condition holds
// is a match. A deny from any applicable grant beats every allow;
// otherwise the permission is allowed when there is a match.
//
// Failures deny. A condition that fails to evaluate (cost limit, missing
// key, run-time type error) or no longer compiles counts against the
// subject: an allow rule's as false, a deny rule's as holding, and a
// grant's as not applying for its allows while its deny rules still count.
// A hierarchy that cannot be resolved for an applicable grant denies
// (ReasonInvalidRoleGraph), as does a missing time or an invalid
// permission.
func (e *Engine) Decide(in Input) Decision {
	d := decider{e: e, in: &in}
	d.w.nodes = make([]walkNode, 0, 16)
	return d.decide()
}

type decider struct {
	e    *Engine
	in   *Input
	vars *Vars // built at the first condition
	w    walker
	out  Decision

	// evaluated memoises the outcome of each condition: a condition met
	// again (a role reached through several grants) is not evaluated
	// twice.
	evaluated []evaluation
	// vias backs the Via of the Matches, a few of them per allocation.
	vias []string

	conditionFailed bool
	graphFailed     bool
}

func (d *decider) decide() Decision {
	in := d.in
	switch {
	case !concretePermission(in.Permission):
		d.step("", "", false, fmt.Sprintf("%q is not a permission that can be checked (resource:action, no wildcard)", in.Permission))
		return d.deny(ReasonInvalidPermission)
	case in.Request.Time.IsZero():
		d.step("", "", false, "no request time")
		return d.deny(ReasonMissingTime)
	}
	grants := in.Grants
	if !slices.IsSortedFunc(grants, compareGrants) {
		grants = slices.Clone(grants)
		slices.SortStableFunc(grants, compareGrants)
	}
	now := in.Request.Time.Unix()
	if len(grants) == 0 {
		d.step("", "", false, "no grants")
	}
	for i := range grants {
		d.grant(&grants[i], now)
	}
	switch {
	case d.out.DeniedBy != nil:
		return d.deny(ReasonDeniedByRule)
	case d.graphFailed:
		return d.deny(ReasonInvalidRoleGraph)
	case len(d.out.Matched) > 0:
		d.out.Allowed = true
		d.out.Reason = ReasonAllowed
		return d.out
	case d.conditionFailed:
		return d.deny(ReasonConditionFailed)
	}
	return d.deny(ReasonNoMatchingGrant)
}

func compareGrants(a, b Grant) int {
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return cmp.Compare(a.RoleID, b.RoleID)
}

func (d *decider) deny(reason string) Decision {
	d.out.Allowed = false
	d.out.Reason = reason
	return d.out
}

func (d *decider) step(role, grantID string, applied bool, why string) {
	if d.in.Explain {
		d.out.Explain = append(d.out.Explain, Step{Role: role, GrantID: grantID, Applied: applied, Why: why})
	}
}

// grant considers one grant.
func (d *decider) grant(g *Grant, now int64) {
	in, explain := d.in, d.in.Explain
	switch {
	case !g.ValidFrom.IsZero() && now < g.ValidFrom.Unix():
		if explain {
			d.step(g.RoleID, g.ID, false, "grant not valid before "+g.ValidFrom.UTC().Format(time.RFC3339))
		}
		return
	case !g.ValidUntil.IsZero() && now >= g.ValidUntil.Unix():
		if explain {
			d.step(g.RoleID, g.ID, false, "grant expired at "+g.ValidUntil.UTC().Format(time.RFC3339))
		}
		return
	case g.OrganizationID != "" && g.OrganizationID != in.Resource.OrganizationID:
		if explain {
			d.step(g.RoleID, g.ID, false, fmt.Sprintf("grant for organization %s, resource of %s", g.OrganizationID, orgName(in.Resource.OrganizationID)))
		}
		return
	}
	denyOnly := false
	if g.Condition != "" {
		ok, err := d.eval(g.Condition)
		switch {
		case err != nil:
			// Unknown whether the grant applies: its allows do not
			// count, its denies do.
			if explain {
				d.step(g.RoleID, g.ID, false, fmt.Sprintf("%s, condition %s failed (%v): its allow rules do not count, its deny rules do", grantScope(g), quote(g.Condition), err))
			}
			denyOnly = true
			if d.couldAllow(g.RoleID) {
				d.conditionFailed = true
			}
		case !ok:
			if explain {
				d.step(g.RoleID, g.ID, false, fmt.Sprintf("%s, condition %s is false", grantScope(g), quote(g.Condition)))
			}
			if d.couldAllow(g.RoleID) {
				d.conditionFailed = true
			}
			return
		case explain:
			d.step(g.RoleID, g.ID, true, fmt.Sprintf("%s, condition %s is true", grantScope(g), quote(g.Condition)))
		}
	} else if explain {
		d.step(g.RoleID, g.ID, true, grantScope(g))
	}

	d.w.start(g.RoleID)
	for i := 0; i < len(d.w.nodes); i++ {
		r, err := d.w.next(i, in.Roles)
		if err != nil {
			d.graphFailed = true
			if explain {
				d.step(g.RoleID, g.ID, false, "role hierarchy unresolved: "+err.Error())
			}
			return
		}
		if d.role(g, &r, i, denyOnly) {
			d.w.expand(i, &r)
		}
	}
}

func grantScope(g *Grant) string {
	if g.OrganizationID == "" {
		return "global grant"
	}
	return "grant for organization " + g.OrganizationID
}

// role considers the rules of one role reached from grant g, and reports
// whether its parents count.
func (d *decider) role(g *Grant, r *Role, node int, denyOnly bool) bool {
	in, explain := d.in, d.in.Explain
	if r.OrganizationID != "" && r.OrganizationID != in.Resource.OrganizationID {
		if explain {
			d.step(r.ID, g.ID, false, fmt.Sprintf("role of organization %s, resource of %s: skipped with what it inherits%s", r.OrganizationID, orgName(in.Resource.OrganizationID), d.inherited(node)))
		}
		return false
	}
	matched := false
	for _, rule := range r.Deny {
		if !matches(rule.Permission, in.Permission) {
			continue
		}
		matched = true
		holds, err := true, error(nil)
		if rule.Condition != "" {
			var ok bool
			ok, err = d.eval(rule.Condition)
			holds = ok || err != nil // a failure counts as holding
		}
		if explain {
			d.step(r.ID, g.ID, holds, "deny rule "+rule.Permission+" matches "+in.Permission+conditionWhy(rule.Condition, holds, err, ": counts as holding")+d.inherited(node))
		}
		if holds && d.out.DeniedBy == nil {
			d.out.DeniedBy = &Match{GrantID: g.ID, Role: r.ID, Via: d.via(node)}
		}
	}
	for _, rule := range r.Allow {
		if !matches(rule.Permission, in.Permission) {
			continue
		}
		matched = true
		if denyOnly {
			if explain {
				d.step(r.ID, g.ID, false, "allow rule "+rule.Permission+" matches "+in.Permission+", but the grant's condition failed"+d.inherited(node))
			}
			continue
		}
		holds, err := true, error(nil)
		if rule.Condition != "" {
			holds, err = d.eval(rule.Condition)
		}
		if explain {
			d.step(r.ID, g.ID, holds, "allow rule "+rule.Permission+" matches "+in.Permission+conditionWhy(rule.Condition, holds, err, "")+d.inherited(node))
		}
		if holds {
			if d.out.Matched == nil {
				d.out.Matched = make([]Match, 0, 16)
			}
			d.out.Matched = append(d.out.Matched, Match{GrantID: g.ID, Role: r.ID, Via: d.via(node)})
		} else {
			d.conditionFailed = true
		}
	}
	if !matched && explain {
		d.step(r.ID, g.ID, false, "no rule matches "+in.Permission+d.inherited(node))
	}
	return true
}

// conditionWhy explains the outcome of a rule's condition.
func conditionWhy(expr string, holds bool, err error, onFailure string) string {
	switch {
	case expr == "":
		return ""
	case err != nil:
		return fmt.Sprintf(", condition %s failed (%v)%s", quote(expr), err, onFailure)
	case holds:
		return ", condition " + quote(expr) + " is true"
	}
	return ", condition " + quote(expr) + " is false"
}

// couldAllow reports whether the role roleID or an ancestor that counts for
// the resource has an allow rule matching the permission, conditions aside.
func (d *decider) couldAllow(roleID string) bool {
	var w walker
	found := false
	_ = w.walk(roleID, d.in.Roles, func(r *Role, _ int) bool {
		if r.OrganizationID != "" && r.OrganizationID != d.in.Resource.OrganizationID {
			return false
		}
		for _, rule := range r.Allow {
			if matches(rule.Permission, d.in.Permission) {
				found = true
			}
		}
		return !found
	})
	return found
}

type evaluation struct {
	expr string
	ok   bool
	err  error
}

// eval evaluates a condition; one that no longer compiles is an error.
// Conditions are pure functions of the input, so each is evaluated once
// per decision.
func (d *decider) eval(expr string) (bool, error) {
	for _, e := range d.evaluated {
		if e.expr == expr {
			return e.ok, e.err
		}
	}
	ok, err := d.evalOnce(expr)
	if d.evaluated == nil {
		d.evaluated = make([]evaluation, 0, 8)
	}
	d.evaluated = append(d.evaluated, evaluation{expr: expr, ok: ok, err: err})
	return ok, err
}

func (d *decider) evalOnce(expr string) (bool, error) {
	cond, err := d.e.conditions.Compile(expr)
	if err != nil {
		return false, err
	}
	if d.vars == nil {
		d.vars = d.e.conditions.Vars(d.in.Request, d.in.User, d.in.Resource)
	}
	return cond.Eval(d.vars)
}

// via is the chain of role IDs to the walk's node, for a Match.
func (d *decider) via(node int) []string {
	n := d.w.nodes[node].len
	if cap(d.vias)-len(d.vias) < n {
		d.vias = make([]string, 0, max(4*n, 64))
	}
	start := len(d.vias)
	d.vias = d.vias[:start+n]
	via := d.vias[start : start+n : start+n]
	for i := n - 1; node >= 0; i, node = i-1, d.w.nodes[node].from {
		via[i] = d.w.nodes[node].id
	}
	return via
}

// inherited describes how the role of node was reached, for explanations.
func (d *decider) inherited(node int) string {
	if !d.in.Explain || d.w.nodes[node].from < 0 {
		return ""
	}
	return " (inherited: " + strings.Join(d.w.via(node), " > ") + ")"
}

func orgName(id string) string {
	if id == "" {
		return "no organization"
	}
	return "organization " + id
}

// quote quotes a condition for an explanation, shortened to 80
// characters.
func quote(expr string) string {
	const limit = 80
	if utf8.RuneCountInString(expr) > limit {
		expr = string([]rune(expr)[:limit]) + "…"
	}
	return "`" + expr + "`"
}
