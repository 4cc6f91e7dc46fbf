package config

import (
	"fmt"
	"regexp"
	"strings"
)

// NetIntelConfig is where network intelligence comes from: MaxMind-format
// databases for location and network (ASN), and the operator's IP lists.
// Each is optional; the files are reloaded when they change.
type NetIntelConfig struct {
	GeoIPCityDB string   `env:"GEOIP_CITY_DB" doc:"GeoLite2/GeoIP2 City database (.mmdb), reloaded when the file changes. Empty: no location; the new-country and impossible-travel risk signals are off."`
	GeoIPASNDB  string   `env:"GEOIP_ASN_DB" doc:"GeoLite2 ASN database (.mmdb), reloaded when the file changes. Empty: no network (ASN); the new-network risk signal is off."`
	IPLists     []string `env:"IP_LISTS" doc:"IP lists as name:path,…; each file holds one IP or CIDR a line (# comments), reloaded when it changes. Names tor, datacenter, blocklist and allowlist have a built-in meaning; others are labels for rules."`
}

var ipListName = regexp.MustCompile(`^[a-z0-9_-]+$`)

func (n NetIntelConfig) validate(string) []string {
	_, problems := parseIPLists(n.IPLists)
	var r report
	for _, p := range problems {
		r.bad("IP_LISTS", "%s", p)
	}
	return r
}

// IPListFiles returns GATEHOUSE_IP_LISTS as list name → file. Call it on a
// loaded (validated) Config.
func (n NetIntelConfig) IPListFiles() map[string]string {
	m, _ := parseIPLists(n.IPLists)
	return m
}

// parseIPLists reads name:path entries, reporting every bad one: a name
// must match [a-z0-9_-]+ and appear once, a path must not be empty.
func parseIPLists(entries []string) (map[string]string, []string) {
	var problems []string
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		name, path, ok := strings.Cut(e, ":")
		name, path = strings.TrimSpace(name), strings.TrimSpace(path)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%q is not name:path", e))
		case !ipListName.MatchString(name):
			problems = append(problems, fmt.Sprintf("list name %q: want lower-case letters, digits, _ and -", name))
		case path == "":
			problems = append(problems, fmt.Sprintf("list %s has no file", name))
		case m[name] != "":
			problems = append(problems, fmt.Sprintf("list %s is named twice", name))
		default:
			m[name] = path
		}
	}
	return m, problems
}
