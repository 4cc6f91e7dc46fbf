package ratepolicy

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ExampleYAML is an example policy file, for the README.
const ExampleYAML = `# Gatehouse rate-limit policy (GATEHOUSE_RATE_LIMITS_FILE). It replaces
# the built-in policy; a built-in rule it does not name (register-ip,
# email-address, …) keeps its built-in limit. The file is read again on
# SIGHUP and when it changes; a bad file is logged and ignored.
#
# A limit is N/period: N requests per period, the period being s, m, h or d,
# optionally with a count (10/1m, 5/h, 100/15m, 1000/1d). burst (default N)
# is how many may come at once.

# Tiers that OAuth clients may be put in (gatehouse clients create --tier).
tiers: [free, standard, enterprise]

rules:
  # Password sign-ins per client address.
  - name: login-ip
    routes: [login]
    key: ip
    limit: 60/1m
    burst: 20

  # Reset and verification emails per address: silent (keyed by email),
  # and without a penalty, which would let anyone block someone's address.
  - name: email-address
    routes: [email_request]
    key: email
    limit: 5/1h
    penalty: false

  # Sign-ups and emails together, per address and address of the client.
  - name: signup-ip-email
    routes: [register, email_request]
    key: ip+email
    limit: 10/15m

  # Token requests per OAuth client, by tier; clients without a tier, or of
  # a tier not listed here, get the limit.
  - name: token-client
    routes: [token]
    key: client
    limit: 600/1m
    burst: 100
    tiers:
      free: 60/1m
      enterprise: 6000/1m

  # Changes through the admin API, by method and path pattern.
  - name: admin-writes
    routes:
      - POST /v1/admin/*
      - PATCH /v1/admin/*
      - DELETE /v1/admin/*
    key: user
    limit: 100/15m

  # Confirmations of a new second factor, per user and address.
  - name: device-confirm
    routes: ["POST /v1/me/mfa/devices/{id}/confirm"]
    key: user+ip
    limit: 1000/1d
    penalty: false
`

// Table renders the policy as a Markdown table, for the README: name,
// routes, key ("(silent)" for a silent rule), limit (and tier limits),
// burst and penalty.
func (p *Policy) Table() string {
	var b strings.Builder
	b.WriteString("| Name | Routes | Key | Limit | Burst | Penalty |\n")
	b.WriteString("|------|--------|-----|-------|-------|---------|\n")
	for _, r := range p.Rules {
		routes := make([]string, len(r.Routes))
		for i, rt := range r.Routes {
			routes[i] = "`" + rt.String() + "`"
		}
		key := r.KeyString()
		if r.Silent {
			key += " (silent)"
		}
		limit := FormatLimit(r.Limit)
		for _, t := range sortedKeys(r.Tiers) {
			limit += fmt.Sprintf("<br>%s: %s", t, FormatLimit(r.Tiers[t]))
		}
		penalty := "no"
		if r.Penalty {
			penalty = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %d | %s |\n", r.Name, strings.Join(routes, ", "), key, limit, r.Limit.Burst, penalty)
	}
	return b.String()
}

// yamlFile and yamlRule are the file format, for writing.
type yamlFile struct {
	Tiers []string   `yaml:"tiers,omitempty,flow"`
	Rules []yamlRule `yaml:"rules"`
}

type yamlRule struct {
	Name    string            `yaml:"name"`
	Routes  []string          `yaml:"routes"`
	Key     string            `yaml:"key"`
	Limit   string            `yaml:"limit"`
	Burst   int               `yaml:"burst,omitempty"`
	Penalty *bool             `yaml:"penalty,omitempty"`
	Tiers   map[string]string `yaml:"tiers,omitempty"`
}

// YAML writes the policy as a policy file that Parse reads back to the
// same policy: a start for an operator's own file (Default(d).YAML()).
// Burst is written when it is not the rate, penalty when false.
func (p *Policy) YAML() ([]byte, error) {
	f := yamlFile{Tiers: p.Tiers}
	for _, r := range p.Rules {
		yr := yamlRule{Name: r.Name, Key: r.KeyString(), Limit: FormatLimit(r.Limit)}
		for _, rt := range r.Routes {
			yr.Routes = append(yr.Routes, rt.String())
		}
		if r.Limit.Burst != r.Limit.Rate {
			yr.Burst = r.Limit.Burst
		}
		if !r.Penalty {
			yr.Penalty = new(false)
		}
		if len(r.Tiers) > 0 {
			yr.Tiers = map[string]string{}
			for t, l := range r.Tiers {
				yr.Tiers[t] = FormatLimit(l)
			}
		}
		f.Rules = append(f.Rules, yr)
	}
	return yaml.Marshal(f)
}
