package risk

import "time"

// refreshCodes are the signals a refresh is scored with, in the order of
// Codes.
var refreshCodes = []Code{NewDevice, NewCountry, NewASN, ImpossibleTravel, TorExit, DatacenterIP, BlocklistedIP}

// RefreshInput is everything a refresh is scored from: the refresh, and
// the session as it was before it.
type RefreshInput struct {
	At time.Time
	// Network describes the refresh's address.
	Network Network
	// UserAgent is the refresh's user agent and SignInUserAgent the
	// session's, in whatever form the caller compares them (the session
	// package passes the user-agent family, so that a browser update is
	// not a change); they are compared as given, "" being one value like
	// any other.
	UserAgent       string
	SignInUserAgent string
	// Previous describes the address the session was last seen from (its
	// sign-in or its latest refresh), at PreviousAt.
	Previous   Network
	PreviousAt time.Time
	// SignInCountry and SignInASN place the session's sign-in; they stand
	// in for Previous's country and ASN when those are unknown.
	SignInCountry string
	SignInASN     uint
}

// RefreshAssessment is the outcome of ScoreRefresh.
type RefreshAssessment struct {
	Assessment
	// Anomaly: the refresh changed country or network (ASN) together with
	// the user agent, or travelled impossibly from where the session was
	// last seen.
	Anomaly bool
}

// ScoreRefresh assesses a refresh of a session against where and how the
// session was last seen (see the package documentation). Its decision is
// block or allow, never step_up.
func (e *Engine) ScoreRefresh(in RefreshInput) RefreshAssessment {
	var reasons []Reason
	var moved, otherAgent, travelled bool // the signals of an anomaly that fired
	for _, code := range refreshCodes {
		w := e.s.Weights[code]
		if w <= 0 || !e.firesOnRefresh(code, in) {
			continue
		}
		reasons = append(reasons, Reason{Code: code, Points: w})
		switch code {
		case NewCountry, NewASN:
			moved = true
		case NewDevice:
			otherAgent = true
		case ImpossibleTravel:
			travelled = true
		}
	}
	a := RefreshAssessment{Assessment: total(reasons), Anomaly: moved && otherAgent || travelled}
	if a.Score >= e.s.Block {
		a.Decision = Block
	}
	return a
}

// firesOnRefresh reports whether the signal code fires for the refresh in.
func (e *Engine) firesOnRefresh(code Code, in RefreshInput) bool {
	n := in.Network
	allowed := n.InList(ListAllowlist)
	switch code {
	case NewDevice:
		return in.UserAgent != in.SignInUserAgent
	case NewCountry:
		prev := in.Previous.Country
		if prev == "" {
			prev = in.SignInCountry
		}
		return n.Country != "" && prev != "" && n.Country != prev
	case NewASN:
		prev := in.Previous.ASN
		if prev == 0 {
			prev = in.SignInASN
		}
		return n.ASN != 0 && prev != 0 && n.ASN != prev
	case ImpossibleTravel:
		p := in.Previous
		return p.HasLocation && e.tooFast(&Place{At: in.PreviousAt, Latitude: p.Latitude, Longitude: p.Longitude}, n, in.At)
	case TorExit:
		return !allowed && n.InList(ListTor)
	case DatacenterIP:
		return !allowed && n.InList(ListDatacenter)
	case BlocklistedIP:
		return !allowed && n.InList(ListBlocklist)
	}
	return false
}
