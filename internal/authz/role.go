package authz

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxDepth bounds the role hierarchy: a chain from a role to its most
// distant ancestor has at most MaxDepth roles.
const MaxDepth = 32

var (
	// ErrRoleCycle is a role hierarchy in which a role is its own ancestor
	// (422 role_cycle). The error returned is a *CycleError.
	ErrRoleCycle = errors.New("authz: role hierarchy cycle")
	// ErrRoleTooDeep is a role hierarchy with a chain of more than MaxDepth
	// roles.
	ErrRoleTooDeep = errors.New("authz: role hierarchy too deep")
	// ErrRoleNotFound is a role, or a parent of one, that is not in the
	// roles given.
	ErrRoleNotFound = errors.New("authz: role not found")
)

// Effect is what a permission rule does.
type Effect string

const (
	// Allow grants the permission (when its condition holds).
	Allow Effect = "allow"
	// Deny takes the permission away, whatever else allows it (when its
	// condition holds).
	Deny Effect = "deny"
)

// PermissionRule is a permission pattern of a role (see Matches) with an
// optional CEL condition: the rule counts only when the condition evaluates
// to true. An empty Condition always holds.
type PermissionRule struct {
	Permission string
	Condition  string
}

// Role is a named set of allowed and denied permission rules that also
// inherits the rules of its parent roles (Parents holds their IDs). A role
// with an OrganizationID is that organisation's own: it counts only for
// resources of that organisation.
type Role struct {
	ID             string
	Name           string
	OrganizationID string
	Allow          []PermissionRule
	Deny           []PermissionRule
	Parents        []string
}

// CycleError is ErrRoleCycle with the cycle: Path starts and ends with the
// same role ID.
type CycleError struct {
	Path  []string
	names []string
}

func (e *CycleError) Error() string {
	return "role hierarchy cycle: " + strings.Join(e.names, " -> ")
}

// Is makes errors.Is(err, ErrRoleCycle) true.
func (e *CycleError) Is(target error) bool { return target == ErrRoleCycle }

// CheckCycle reports whether saving changed (a new role, or a new version of
// roles[changed.ID]) keeps the hierarchy acyclic and at most MaxDepth roles
// deep along any chain through changed. A cycle is a *CycleError (matching
// ErrRoleCycle) naming the path, for example "editor -> reviewer ->
// editor"; a role that is its own parent is the cycle "editor -> editor".
// Parents missing from roles are ignored: they cannot lead back to changed.
func CheckCycle(roles map[string]Role, changed Role) error {
	get := func(id string) (Role, bool) {
		if id == changed.ID {
			return changed, true
		}
		r, ok := roles[id]
		return r, ok
	}
	name := func(id string) string {
		if r, ok := get(id); ok && r.Name != "" {
			return r.Name
		}
		return id
	}
	// Depth-first search from changed along parent links. Only a cycle
	// through changed can be new, but a cycle elsewhere (older data) must
	// not make the search loop: done holds roles fully explored. height
	// memoises the longest chain from a role upwards.
	var (
		path   []string
		onPath = map[string]bool{}
		height = map[string]int{}
	)
	var visit func(id string) error
	visit = func(id string) error {
		if onPath[id] {
			i := slices.Index(path, id)
			cycle := append(slices.Clone(path[i:]), id)
			names := make([]string, len(cycle))
			for j, c := range cycle {
				names[j] = name(c)
			}
			return &CycleError{Path: cycle, names: names}
		}
		if _, done := height[id]; done {
			return nil
		}
		r, ok := get(id)
		if !ok {
			height[id] = 0
			return nil
		}
		path = append(path, id)
		onPath[id] = true
		h := 1
		for _, p := range r.Parents {
			if err := visit(p); err != nil {
				return err
			}
			h = max(h, 1+height[p])
		}
		path = path[:len(path)-1]
		onPath[id] = false
		height[id] = h
		return nil
	}
	if err := visit(changed.ID); err != nil {
		return err
	}
	// The longest chain through changed: its own height plus the longest
	// chain of descendants below it.
	below := descendantDepth(roles, changed.ID)
	if d := height[changed.ID] + below; d > MaxDepth {
		return fmt.Errorf("%w: %d roles in a chain through %s, at most %d", ErrRoleTooDeep, d, name(changed.ID), MaxDepth)
	}
	return nil
}

// descendantDepth is the number of roles in the longest chain of roles
// inheriting from id (0 if none does). The hierarchy above id is acyclic
// (checked before); a cycle among the descendants stops at MaxDepth.
func descendantDepth(roles map[string]Role, id string) int {
	children := map[string][]string{}
	for _, r := range roles {
		if r.ID == id {
			continue
		}
		for _, p := range r.Parents {
			children[p] = append(children[p], r.ID)
		}
	}
	memo := map[string]int{}
	var depth func(id string, level int) int
	depth = func(id string, level int) int {
		if d, ok := memo[id]; ok {
			return d
		}
		if level > MaxDepth {
			return 0
		}
		d := 0
		for _, c := range children[id] {
			d = max(d, 1+depth(c, level+1))
		}
		memo[id] = d
		return d
	}
	return depth(id, 0)
}

// EffectivePermission is one rule a role has, directly or inherited: Via is
// the chain of role IDs from the role asked about to the role that holds the
// rule (a single ID for the role's own rules).
type EffectivePermission struct {
	Permission string
	Effect     Effect
	Condition  string
	Via        []string
}

// Effective lists the rules of the role roleID and of all its ancestors,
// each with its provenance. A rule reached along several paths (diamond
// inheritance) is listed once, with the shortest path (the first in parent
// order among paths of the same length). The order is deterministic: by
// permission, deny before allow, then by path length and path, then by
// condition. It fails with ErrRoleNotFound if roleID or a parent is missing
// and ErrRoleTooDeep beyond MaxDepth; a cycle cannot make it loop.
func Effective(roleID string, roles map[string]Role) ([]EffectivePermission, error) {
	var (
		out []EffectivePermission
		w   walker
	)
	err := w.walk(roleID, roles, func(r *Role, node int) bool {
		for _, effect := range []Effect{Deny, Allow} {
			rules := r.Allow
			if effect == Deny {
				rules = r.Deny
			}
			for _, rule := range rules {
				out = append(out, EffectivePermission{
					Permission: rule.Permission,
					Effect:     effect,
					Condition:  rule.Condition,
					Via:        w.via(node),
				})
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b EffectivePermission) int {
		if c := cmp.Compare(a.Permission, b.Permission); c != 0 {
			return c
		}
		if a.Effect != b.Effect {
			if a.Effect == Deny {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(a.Via), len(b.Via)); c != 0 {
			return c
		}
		if c := slices.Compare(a.Via, b.Via); c != 0 {
			return c
		}
		return cmp.Compare(a.Condition, b.Condition)
	})
	return out, nil
}

// walker walks a role hierarchy breadth first. Its scratch space is reused
// from one walk to the next, so that a decision over many grants allocates
// little; a walker is not safe for concurrent use.
type walker struct {
	nodes []walkNode
	seen  map[string]bool // used when nodes outgrow a linear scan
}

// walkNode is a role reached by the walk and the node it was reached from
// (-1 for the role the walk started at).
type walkNode struct {
	id   string
	from int
	len  int // roles in the chain from the start to this one
}

// walk visits the role roleID and its ancestors breadth first, each role
// once (the first time it is reached: along a shortest path, parents in
// order). visit gets the node index, from which via rebuilds the chain of
// role IDs that leads to the role, and returns whether to go on to the
// role's parents. It fails with ErrRoleNotFound for a missing role and
// ErrRoleTooDeep when a role is reached only beyond MaxDepth.
//
// The hot path (Decide) drives start, next and expand itself rather than
// pass a closure, which would cost allocations.
func (w *walker) walk(roleID string, roles map[string]Role, visit func(r *Role, node int) bool) error {
	w.start(roleID)
	for i := 0; i < len(w.nodes); i++ {
		r, err := w.next(i, roles)
		if err != nil {
			return err
		}
		if visit(&r, i) {
			w.expand(i, &r)
		}
	}
	return nil
}

// start begins a walk from the role roleID: node 0.
func (w *walker) start(roleID string) {
	w.nodes = append(w.nodes[:0], walkNode{id: roleID, from: -1, len: 1})
	clear(w.seen)
}

// next resolves node i, which the caller visits and then expands (or not)
// before going on to node i+1, while i < len(w.nodes).
func (w *walker) next(i int, roles map[string]Role) (Role, error) {
	n := w.nodes[i]
	r, ok := roles[n.id]
	if !ok {
		if n.from < 0 {
			return Role{}, fmt.Errorf("%w: %s", ErrRoleNotFound, n.id)
		}
		return Role{}, fmt.Errorf("%w: %s, parent of %s", ErrRoleNotFound, n.id, w.nodes[n.from].id)
	}
	if n.len > MaxDepth {
		return Role{}, fmt.Errorf("%w: %s is %d roles above %s, at most %d", ErrRoleTooDeep, n.id, n.len, w.nodes[0].id, MaxDepth)
	}
	return r, nil
}

// expand queues the parents of node i, whose role is r, that the walk has
// not reached yet.
func (w *walker) expand(i int, r *Role) {
	for _, p := range r.Parents {
		if !w.reached(p) {
			w.nodes = append(w.nodes, walkNode{id: p, from: i, len: w.nodes[i].len + 1})
		}
	}
}

// reached reports whether the walk has reached the role id already, and
// records it if not (the caller appends its node).
func (w *walker) reached(id string) bool {
	const linear = 32
	if len(w.nodes) <= linear {
		for _, n := range w.nodes {
			if n.id == id {
				return true
			}
		}
		return false
	}
	if w.seen == nil {
		w.seen = make(map[string]bool)
	}
	if len(w.seen) == 0 {
		for _, n := range w.nodes {
			w.seen[n.id] = true
		}
	}
	if w.seen[id] {
		return true
	}
	w.seen[id] = true
	return false
}

// via is the chain of role IDs from the start of the walk to node.
func (w *walker) via(node int) []string {
	out := make([]string, w.nodes[node].len)
	for i := len(out) - 1; node >= 0; i, node = i-1, w.nodes[node].from {
		out[i] = w.nodes[node].id
	}
	return out
}
