package ratepolicy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/internal/ratelimit"
)

// maxSpan is the longest time ratelimit accepts a limit to span (Burst
// emission intervals, or a period): about 36 years.
const maxSpan = time.Duration(1 << 60)

var units = map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}

// ParseLimit parses a limit written N/period (see the package
// documentation): "10/1m", "5/h", "100/15m", "1000/1d". Its burst is N.
func ParseLimit(s string) (ratelimit.Limit, error) {
	n, period, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return ratelimit.Limit{}, fmt.Errorf("%q: want N/period, such as 10/1m", s)
	}
	rate, ok := count(strings.TrimSpace(n))
	if !ok {
		return ratelimit.Limit{}, fmt.Errorf("%q: N must be a whole number of at least 1", s)
	}
	p, err := parsePeriod(strings.TrimSpace(period))
	if err != nil {
		return ratelimit.Limit{}, fmt.Errorf("%q: %v", s, err)
	}
	l := ratelimit.Limit{Rate: rate, Burst: rate, Period: p}
	if err := checkLimit(l); err != nil {
		return ratelimit.Limit{}, fmt.Errorf("%q: %v", s, err)
	}
	return l, nil
}

// parsePeriod parses the period of a limit: a unit s, m, h or d,
// optionally preceded by a count.
func parsePeriod(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("the period is missing (want s, m, h or d, optionally with a count: 1m, 15m)")
	}
	unit, ok := units[s[len(s)-1]]
	if !ok {
		return 0, fmt.Errorf("the period %q does not end in a unit s, m, h or d", s)
	}
	c := 1
	if digits := s[:len(s)-1]; digits != "" {
		if c, ok = count(digits); !ok {
			return 0, fmt.Errorf("the period %q must be a whole number of at least 1 before its unit", s)
		}
	}
	if time.Duration(c) > maxSpan/unit {
		return 0, fmt.Errorf("the period %q is too long", s)
	}
	return time.Duration(c) * unit, nil
}

// count parses a whole number of at least 1, in decimal digits only.
func count(s string) (int, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1
}

// checkLimit applies ratelimit's own bounds to a limit, so that every
// limit of a valid policy can be applied.
func checkLimit(l ratelimit.Limit) error {
	if l.Rate < 1 || l.Burst < 1 || l.Period <= 0 {
		return errors.New("rate and burst must be at least 1 and the period positive")
	}
	e := l.Period / time.Duration(l.Rate)
	if e == 0 {
		return errors.New("more than one request per nanosecond")
	}
	if time.Duration(l.Burst) > maxSpan/e {
		return fmt.Errorf("a burst of %d spans more than %v", l.Burst, maxSpan)
	}
	return nil
}

// FormatLimit writes a limit as a policy file does, "100/1h", with the
// largest unit that divides the period (a period that is not whole
// seconds is written as a Go duration, which Parse does not read). The
// burst is not part of it.
func FormatLimit(l ratelimit.Limit) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if l.Period > 0 && l.Period%u.d == 0 {
			return fmt.Sprintf("%d/%d%s", l.Rate, l.Period/u.d, u.name)
		}
	}
	return fmt.Sprintf("%d/%s", l.Rate, l.Period)
}

// ParseKey parses a key as written in a policy file: "ip", "ip+email".
func ParseKey(s string) ([]KeyPart, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty (want ip, user, email, client, api_key or a combination such as ip+email)")
	}
	var key []KeyPart
	for part := range strings.SplitSeq(s, "+") {
		k := KeyPart(strings.TrimSpace(part))
		switch {
		case !slices.Contains(KeyParts, k):
			return nil, fmt.Errorf("%q is not a key part (want ip, user, email, client or api_key, joined by +)", string(k))
		case slices.Contains(key, k):
			return nil, fmt.Errorf("%q appears twice", string(k))
		}
		key = append(key, k)
	}
	return key, nil
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// ParseRoute parses a route as written in a policy file: a group name
// ("login"), or a path pattern with an optional method
// ("POST /v1/auth/login", "/v1/admin/*").
func ParseRoute(s string) (Route, error) {
	s = strings.TrimSpace(s)
	method, path, hasMethod := strings.Cut(s, " ")
	switch {
	case s == "":
		return Route{}, errors.New("empty route")
	case hasMethod:
		if !slices.Contains(methods, method) {
			return Route{}, fmt.Errorf("%q: %q is not an HTTP method (want it in capitals: %s)", s, method, strings.Join(methods, ", "))
		}
		path = strings.TrimSpace(path)
	case strings.HasPrefix(s, "/"):
		method, path = "", s
	case slices.Contains(Groups, s):
		return Route{Group: s}, nil
	default:
		return Route{}, fmt.Errorf("%q is not a route group (want one of %s) nor a pattern such as \"POST /v1/auth/login\"", s, strings.Join(Groups, ", "))
	}
	if err := checkPath(path); err != nil {
		return Route{}, fmt.Errorf("%q: %v", s, err)
	}
	return Route{Method: method, Path: path}, nil
}

var (
	wildcardName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// pchar is what a literal path segment may hold: RFC 3986 pchar, with
	// '*' kept for wildcards.
	pchar = regexp.MustCompile(`^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$`)
)

// checkPath checks a path pattern (see Route).
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("the path must start with /")
	}
	if p == "/" {
		return nil
	}
	segs := strings.Split(p[1:], "/")
	names := map[string]bool{}
	for i, seg := range segs {
		last := i == len(segs)-1
		switch {
		case seg == "" && last:
			return errors.New("the path ends with /: end it with /* to cover what is under it")
		case seg == "":
			return errors.New("the path has an empty segment (//)")
		case seg == "." || seg == "..":
			return fmt.Errorf("the path has a %q segment", seg)
		case isRest(seg) && !last:
			return fmt.Errorf("%q may only be the last segment", seg)
		case isWildcard(seg):
			name := strings.TrimSuffix(seg[1:len(seg)-1], "...")
			if !wildcardName.MatchString(name) {
				return fmt.Errorf("%q: a wildcard is {name} with a name of letters, digits and _", seg)
			}
			if names[name] {
				return fmt.Errorf("the wildcard {%s} appears twice", name)
			}
			names[name] = true
		case seg == "*":
		case !pchar.MatchString(seg):
			return fmt.Errorf("the segment %q has a character a path pattern cannot hold", seg)
		}
	}
	return nil
}

// namePattern is what rule and tier names look like: they appear in
// headers and URLs.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

const nameRule = "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// Parse reads a policy file (see the package documentation), source naming
// it (its path) in the policy and the problems. It reports every problem
// at once (errors.Join), each naming its rule (by number and name), field
// and line: unknown fields, unknown route groups, bad patterns, key parts
// or limits, a burst below 1, duplicate names, tiers not declared in the
// top-level tiers, no rules at all.
//
// Unknown fields are refused as yaml's KnownFields(true) would refuse
// them, but found by walking the document so that each problem can name
// its rule.
func Parse(data []byte, source string) (*Policy, error) {
	ps := &problems{source: source}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		ps.add(0, "", "the file is empty: a policy needs a rules: list")
		return nil, ps.err()
	case err != nil:
		ps.add(0, "", "%v", err)
		return nil, ps.err()
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		ps.add(more.Line, "", "a policy file holds one YAML document")
		return nil, ps.err()
	}
	if len(doc.Content) == 0 {
		ps.add(0, "", "the file is empty: a policy needs a rules: list")
		return nil, ps.err()
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		ps.add(top.Line, "", "the top level must be a mapping with rules: and tiers:")
		return nil, ps.err()
	}
	p := &Policy{Source: source}
	var rulesNode *yaml.Node
	forFields(ps, top, "", []string{"rules", "tiers"}, func(key string, v *yaml.Node) {
		switch key {
		case "tiers":
			p.Tiers = parseTiers(ps, v)
		case "rules":
			rulesNode = v
		}
	})
	if rulesNode != nil && rulesNode.Kind != yaml.SequenceNode && rulesNode.Tag != "!!null" {
		ps.add(rulesNode.Line, "rules", "must be a list of rules")
		return nil, ps.err()
	}
	if rulesNode == nil || len(rulesNode.Content) == 0 {
		line := 0
		if rulesNode != nil {
			line = rulesNode.Line
		}
		ps.add(line, "rules", "no rules: a policy needs at least one")
		return nil, ps.err()
	}
	firstIndex := map[string]int{}
	for i, n := range rulesNode.Content {
		r, name, ok := parseRule(ps, i, resolve(n), p.Tiers)
		if j, dup := firstIndex[name]; dup && name != "" {
			ps.add(n.Line, ruleField(i, name, "name"), "duplicate: rule %d has the same name", j+1)
		} else if name != "" {
			firstIndex[name] = i
		}
		if ok {
			p.Rules = append(p.Rules, r)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p, nil
}

var ruleFields = []string{"name", "routes", "key", "limit", "burst", "penalty", "tiers"}

// parseRule reads and checks rule i (0-based) of the file, reporting its
// problems; ok is false when it had any. name is the rule's name as far
// as it could be read, even when it is not valid.
func parseRule(ps *problems, i int, n *yaml.Node, declared []string) (r Rule, name string, ok bool) {
	before := len(ps.errs)
	if n.Kind != yaml.MappingNode {
		ps.add(n.Line, ruleField(i, "", ""), "must be a mapping with name, routes, key and limit")
		return Rule{}, "", false
	}
	// The name first, so that every other problem can name the rule.
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "name" {
			decodeScalar(ps, resolve(n.Content[j+1]), ruleField(i, "", "name"), &name)
			break
		}
	}
	where := func(field string) string { return ruleField(i, name, field) }
	r = Rule{Name: name, Penalty: true}
	given := map[string]bool{}
	var burst *int
	forFields(ps, n, where(""), ruleFields, func(key string, v *yaml.Node) {
		given[key] = true
		add := func(format string, args ...any) { ps.add(v.Line, where(key), format, args...) }
		var s string
		switch key {
		case "name":
			if !namePattern.MatchString(name) {
				add("%q %s", name, nameRule)
			}
		case "routes":
			r.Routes = parseRoutes(ps, v, where(key))
		case "key":
			if decodeScalar(ps, v, where(key), &s) {
				k, err := ParseKey(s)
				if err != nil {
					add("%v", err)
				}
				r.Key = k
			}
		case "limit":
			if decodeScalar(ps, v, where(key), &s) {
				l, err := ParseLimit(s)
				if err != nil {
					add("%v", err)
				}
				r.Limit = l
			}
		case "burst":
			var b int
			if decodeScalar(ps, v, where(key), &b) {
				if b < 1 {
					add("%d: must be at least 1", b)
				}
				burst = &b
			}
		case "penalty":
			decodeScalar(ps, v, where(key), &r.Penalty)
		case "tiers":
			r.Tiers = parseRuleTiers(ps, v, where(key), declared)
		}
	})
	for _, f := range []string{"name", "routes", "key", "limit"} {
		if !given[f] {
			ps.add(n.Line, where(f), "required")
		}
	}
	if burst != nil && *burst >= 1 && r.Limit.Rate > 0 {
		r.Limit.Burst = *burst
		if err := checkLimit(r.Limit); err != nil {
			ps.add(n.Line, where("burst"), "%v", err)
		}
	}
	r.Silent = isSilent(r.Key, r.Routes)
	return r, name, len(ps.errs) == before
}

// parseRoutes reads the routes: list of a rule.
func parseRoutes(ps *problems, v *yaml.Node, where string) []Route {
	if v.Kind != yaml.SequenceNode {
		ps.add(v.Line, where, "must be a list of route groups and patterns")
		return nil
	}
	if len(v.Content) == 0 {
		ps.add(v.Line, where, "empty: list at least one route group or pattern")
	}
	var routes []Route
	for _, item := range v.Content {
		item = resolve(item)
		var s string
		if !decodeScalar(ps, item, where, &s) {
			continue
		}
		rt, err := ParseRoute(s)
		switch {
		case err != nil:
			ps.add(item.Line, where, "%v", err)
		case slices.Contains(routes, rt):
			ps.add(item.Line, where, "%q is listed twice", s)
		default:
			routes = append(routes, rt)
		}
	}
	return routes
}

// parseTiers reads the top-level tiers: list.
func parseTiers(ps *problems, v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode {
		ps.add(v.Line, "tiers", "must be a list of tier names")
		return nil
	}
	var tiers []string
	for _, item := range v.Content {
		var t string
		if !decodeScalar(ps, resolve(item), "tiers", &t) {
			continue
		}
		switch {
		case !namePattern.MatchString(t):
			ps.add(item.Line, "tiers", "%q %s", t, nameRule)
		case slices.Contains(tiers, t):
			ps.add(item.Line, "tiers", "%q is listed twice", t)
		default:
			tiers = append(tiers, t)
		}
	}
	return tiers
}

// parseRuleTiers reads the tiers: mapping of a rule, tier name → limit.
func parseRuleTiers(ps *problems, v *yaml.Node, where string, declared []string) map[string]ratelimit.Limit {
	if v.Kind != yaml.MappingNode {
		ps.add(v.Line, where, "must map tier names to limits, such as {enterprise: 600/1m}")
		return nil
	}
	out := map[string]ratelimit.Limit{}
	for j := 0; j+1 < len(v.Content); j += 2 {
		k, lv := resolve(v.Content[j]), resolve(v.Content[j+1])
		var name, limit string
		if !decodeScalar(ps, k, where, &name) || !decodeScalar(ps, lv, where+" "+name, &limit) {
			continue
		}
		l, err := ParseLimit(limit)
		switch _, dup := out[name]; {
		case dup:
			ps.add(k.Line, where, "tier %q is listed twice", name)
		case !slices.Contains(declared, name):
			ps.add(k.Line, where, "tier %q is not declared in the top-level tiers: list", name)
		case err != nil:
			ps.add(lv.Line, where+" "+name, "%v", err)
		default:
			out[name] = l
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// forFields calls f for every field of mapping n in order, reporting
// fields not in known and fields given twice.
func forFields(ps *problems, n *yaml.Node, where string, known []string, f func(key string, v *yaml.Node)) {
	seen := map[string]bool{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], resolve(n.Content[j+1])
		field := strings.TrimSpace(where + " " + k.Value)
		switch {
		case !slices.Contains(known, k.Value):
			ps.add(k.Line, where, "unknown field %q (want %s)", k.Value, strings.Join(known, ", "))
		case seen[k.Value]:
			ps.add(k.Line, field, "given twice")
		default:
			seen[k.Value] = true
			f(k.Value, v)
		}
	}
}

// decodeScalar decodes the scalar n into v, reporting what is wrong.
func decodeScalar(ps *problems, n *yaml.Node, where string, v any) bool {
	if n.Kind != yaml.ScalarNode {
		ps.add(n.Line, where, "must be a single value, not a list or mapping")
		return false
	}
	if err := n.Decode(v); err != nil {
		var want string
		switch v.(type) {
		case *int:
			want = "a whole number"
		case *bool:
			want = "true or false"
		default:
			want = "text"
		}
		ps.add(n.Line, where, "%q: must be %s", n.Value, want)
		return false
	}
	return true
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// ruleField names a field of rule i (0-based): `rule 2 "login-ip" limit`.
func ruleField(i int, name, field string) string {
	s := "rule " + strconv.Itoa(i+1)
	if name != "" {
		s += " " + strconv.Quote(name)
	}
	if field != "" {
		s += " " + field
	}
	return s
}

// problems collects what is wrong with a file, each as
// "source:line: where: message".
type problems struct {
	source string
	errs   []error
	lines  []int
}

func (ps *problems) add(line int, where, format string, args ...any) {
	prefix := ps.source
	if line > 0 {
		prefix += ":" + strconv.Itoa(line)
	}
	if prefix != "" {
		prefix += ": "
	}
	if where != "" {
		prefix += where + ": "
	}
	ps.errs = append(ps.errs, errors.New(prefix+fmt.Sprintf(format, args...)))
	ps.lines = append(ps.lines, line)
}

// err returns every problem, by line.
func (ps *problems) err() error {
	order := make([]int, len(ps.errs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return ps.lines[a] - ps.lines[b] })
	errs := make([]error, len(order))
	for i, j := range order {
		errs[i] = ps.errs[j]
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
