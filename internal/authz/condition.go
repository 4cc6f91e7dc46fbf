package authz

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

const (
	// MaxConditionLength is the longest condition accepted, in characters.
	MaxConditionLength = 2000
	// DefaultCostLimit is the default CEL cost limit of one evaluation.
	DefaultCostLimit = 10_000
	// DefaultCacheSize is the default number of compiled conditions a
	// Compiler keeps.
	DefaultCacheSize = 4096
)

// ErrInvalidCondition is a condition that does not compile: a syntax or
// type error, a result that is not a bool, or one longer than
// MaxConditionLength (422). The error returned is a *ConditionError.
var ErrInvalidCondition = errors.New("authz: invalid condition")

// ConditionError is ErrInvalidCondition with the compiler's message.
type ConditionError struct {
	Message string
}

func (e *ConditionError) Error() string { return "invalid condition: " + e.Message }

// Is makes errors.Is(err, ErrInvalidCondition) true.
func (e *ConditionError) Is(target error) bool { return target == ErrInvalidCondition }

// Request is the request a check is made for, as conditions see it
// (request.*). Time is also the instant grants are valid at.
type Request struct {
	IP      string    `cel:"ip"`
	Time    time.Time `cel:"time"`
	MFA     bool      `cel:"mfa"` // the token's amr includes mfa
	Country string    `cel:"country"`
}

// User is the subject of a check, as conditions see it (user.*).
type User struct {
	ID            string         `cel:"id"`
	EmailVerified bool           `cel:"email_verified"`
	Organizations []string       `cel:"organizations"` // IDs of the organisations the user is a member of
	Metadata      map[string]any `cel:"metadata"`
}

// Resource is what a check asks about, as conditions see it (resource.*).
// Attributes are those the caller passes in the check. A Resource without
// OrganizationID gets only global grants.
type Resource struct {
	Type           string         `cel:"type"`
	ID             string         `cel:"id"`
	OrganizationID string         `cel:"organization_id"`
	OwnerID        string         `cel:"owner_id"`
	Attributes     map[string]any `cel:"attributes"`
}

// CompilerOptions tunes a Compiler; zero values take the defaults.
type CompilerOptions struct {
	// CostLimit is the CEL cost limit of one evaluation
	// (DefaultCostLimit).
	CostLimit uint64
	// CacheSize is how many compiled conditions are kept, least recently
	// used first out (DefaultCacheSize).
	CacheSize int
}

// Compiler compiles and evaluates conditions: CEL expressions over the
// variables request (Request), user (User) and resource (Resource), with
// the standard library, the strings extension and the network extension
// (ip(), cidr(), for example cidr('10.0.0.0/8').containsIP(request.ip)).
// It keeps the compiled programs of recent conditions, by expression text.
// Build one and share it: it is safe for concurrent use.
//
// An evaluation is bounded by the cost limit alone: programs are built
// without interrupt checks and evaluated without a context, so an
// expensive comprehension stops when its cost passes the limit, with an
// error.
type Compiler struct {
	env       *cel.Env
	costLimit uint64

	mu    sync.Mutex
	size  int
	lru   *list.List // of *cacheEntry, most recently used first
	index map[string]*list.Element
}

type cacheEntry struct {
	expr string
	cond *Condition
	err  error
}

// NewCompiler builds the CEL environment.
func NewCompiler(opts CompilerOptions) (*Compiler, error) {
	if opts.CostLimit == 0 {
		opts.CostLimit = DefaultCostLimit
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	env, err := cel.NewEnv(
		ext.NativeTypes(
			cel.NativeTypeFor[Request](),
			cel.NativeTypeFor[User](),
			cel.NativeTypeFor[Resource](),
			ext.ParseStructTags(true),
		),
		cel.Variable("request", cel.ObjectType("authz.Request")),
		cel.Variable("user", cel.ObjectType("authz.User")),
		cel.Variable("resource", cel.ObjectType("authz.Resource")),
		ext.Strings(),
		ext.Network(),
	)
	if err != nil {
		return nil, fmt.Errorf("authz: condition environment: %w", err)
	}
	return &Compiler{
		env:       env,
		costLimit: opts.CostLimit,
		size:      opts.CacheSize,
		lru:       list.New(),
		index:     make(map[string]*list.Element),
	}, nil
}

// Condition is a compiled condition.
type Condition struct {
	expr      string
	program   cel.Program
	costLimit uint64
}

// String returns the expression.
func (c *Condition) String() string { return c.expr }

// Compile parses and type-checks expr, whose result must be a bool (a
// dynamic value, such as resource.attributes["x"], must be compared:
// resource.attributes["x"] == true). A refused expression is a
// *ConditionError whose Message is the compiler's. Compiled conditions are
// cached, and so are refusals.
func (c *Compiler) Compile(expr string) (*Condition, error) {
	c.mu.Lock()
	if el, ok := c.index[expr]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.cond, e.err
	}
	c.mu.Unlock()

	cond, err := c.compile(expr)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[expr]; ok { // compiled meanwhile by another caller
		e := el.Value.(*cacheEntry)
		return e.cond, e.err
	}
	c.index[expr] = c.lru.PushFront(&cacheEntry{expr: expr, cond: cond, err: err})
	for c.lru.Len() > c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.index, old.Value.(*cacheEntry).expr)
	}
	return cond, err
}

func (c *Compiler) compile(expr string) (*Condition, error) {
	if n := utf8.RuneCountInString(expr); n > MaxConditionLength {
		return nil, &ConditionError{Message: fmt.Sprintf("expression of %d characters, at most %d", n, MaxConditionLength)}
	}
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		return nil, &ConditionError{Message: iss.String()}
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, &ConditionError{Message: fmt.Sprintf("expression of type %s, want bool", ast.OutputType())}
	}
	prg, err := c.env.Program(ast, cel.CostLimit(c.costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &ConditionError{Message: err.Error()}
	}
	return &Condition{expr: expr, program: prg, costLimit: c.costLimit}, nil
}

// Vars are the values of the variables of a condition, shared by all the
// evaluations of a check. Each is adapted for CEL the first time a
// condition reads it. A Vars is for one goroutine.
type Vars struct {
	adapter  types.Adapter
	req      Request
	user     User
	res      Resource
	resolved [3]ref.Val // request, user, resource
}

// Vars gathers the variables of a check for evaluation.
func (c *Compiler) Vars(req Request, user User, res Resource) *Vars {
	return &Vars{adapter: c.env.CELTypeAdapter(), req: req, user: user, res: res}
}

// ResolveName implements interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	var i int
	switch name {
	case "request":
		i = 0
	case "user":
		i = 1
	case "resource":
		i = 2
	default:
		return nil, false
	}
	if v.resolved[i] == nil {
		switch i {
		case 0:
			v.resolved[i] = v.adapter.NativeToValue(&v.req)
		case 1:
			v.resolved[i] = v.adapter.NativeToValue(&v.user)
		case 2:
			v.resolved[i] = v.adapter.NativeToValue(&v.res)
		}
	}
	return v.resolved[i], true
}

// Parent implements interpreter.Activation.
func (v *Vars) Parent() interpreter.Activation { return nil }

// Eval evaluates the condition. Any evaluation error (the cost limit
// exceeded, a missing map key, a type error at run time) is returned, and
// the caller treats it as the condition failing.
func (c *Condition) Eval(v *Vars) (bool, error) {
	out, _, err := c.program.Eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("result of type %s, want bool", out.Type())
	}
	return bool(b), nil
}
