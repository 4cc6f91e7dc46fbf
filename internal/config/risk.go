package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/risk"
)

// RiskConfig tunes the risk score of sign-ins and refreshes (package
// risk): the thresholds of its decisions and the weights of its signals.
// Scoring uses the sources that exist: without GeoIP databases or IP
// lists the network signals are off.
type RiskConfig struct {
	Enabled bool     `env:"RISK_ENABLED" default:"true" doc:"Score every sign-in (password, social, magic link) and every refresh, and step up (an emailed code when the user has no second factor) or block risky ones. The network signals need GATEHOUSE_GEOIP_* and GATEHOUSE_IP_LISTS; without them only the user's own habits and the failure counters count."`
	StepUp  int      `env:"RISK_STEP_UP" default:"50" doc:"Risk score (0-100) from which a sign-in must pass a second factor (an emailed code for users without one)."`
	Block   int      `env:"RISK_BLOCK" default:"90" doc:"Risk score (0-100) from which a sign-in is refused (403 risk_blocked), or a refresh refused and its session ended, and the user emailed."`
	MaxKMH  int      `env:"RISK_MAX_KMH" default:"1000" doc:"Fastest plausible travel between two sign-ins, or two uses of a session, in km/h; faster is impossible_travel."`
	Weights []string `env:"RISK_WEIGHTS" doc:"Signal weights overriding the defaults, as code:weight,… (0-100; 0 disables the signal), e.g. new_device:10,velocity:0."`
}

func (c RiskConfig) validate(string) []string {
	var r report
	_, problems := parseRiskWeights(c.Weights)
	for _, p := range problems {
		r.bad("RISK_WEIGHTS", "%s", p)
	}
	if c.StepUp < 1 || c.StepUp > 100 {
		r.bad("RISK_STEP_UP", "must be between 1 and 100")
	}
	if c.Block < 1 || c.Block > 100 {
		r.bad("RISK_BLOCK", "must be between 1 and 100")
	} else if c.Block < c.StepUp {
		r.bad("RISK_BLOCK", "must be at least GATEHOUSE_RISK_STEP_UP")
	}
	if c.MaxKMH < 1 {
		r.bad("RISK_MAX_KMH", "must be positive")
	}
	return r
}

// Settings returns the scoring settings: the risk package's defaults with
// this section's thresholds, speed and weights. Call it on a loaded
// (validated) Config.
func (c RiskConfig) Settings() risk.Settings {
	s := risk.DefaultSettings()
	s.StepUp, s.Block, s.MaxKMH = c.StepUp, c.Block, float64(c.MaxKMH)
	w, _ := parseRiskWeights(c.Weights)
	maps.Copy(s.Weights, w)
	return s
}

// parseRiskWeights reads code:weight entries, reporting every bad one: the
// code must be one of risk.Codes and appear once, the weight an integer
// between 0 and 100.
func parseRiskWeights(entries []string) (map[risk.Code]int, []string) {
	var problems []string
	m := make(map[risk.Code]int, len(entries))
	for _, e := range entries {
		name, val, ok := strings.Cut(e, ":")
		code := risk.Code(strings.TrimSpace(name))
		w, err := strconv.Atoi(strings.TrimSpace(val))
		_, dup := m[code]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%q is not code:weight", e))
		case !slices.Contains(risk.Codes, code):
			problems = append(problems, fmt.Sprintf("unknown signal %q", code))
		case err != nil || w < 0 || w > 100:
			problems = append(problems, fmt.Sprintf("weight of %s must be an integer between 0 and 100", code))
		case dup:
			problems = append(problems, fmt.Sprintf("signal %s is weighted twice", code))
		default:
			m[code] = w
		}
	}
	return m, problems
}
