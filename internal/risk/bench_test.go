package risk

import (
	"testing"
	"time"
)

// BenchmarkScoreObserve is the per-sign-in cost of the model: decode the
// stored profile, score, observe and encode it again, for a user with a
// full history.
func BenchmarkScoreObserve(b *testing.B) {
	e := engine(b, nil)
	p := habitual()
	for i := range MaxDevices {
		p.Observe(SignIn{At: t0.Add(-time.Duration(i) * time.Hour), Device: "d" + asnKey(uint(i)), Network: paris})
	}
	data, err := p.Encode()
	if err != nil {
		b.Fatal(err)
	}
	in := Input{At: t0, Device: "laptop", Network: sydney, Failures: Failures{AccountsFromIP: 3}}
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecodeProfile(data)
		if err != nil {
			b.Fatal(err)
		}
		in.Profile = p
		if a := e.Score(in); a.Decision != StepUp {
			b.Fatalf("decision %s", a.Decision)
		}
		p.Observe(SignIn{At: in.At, Device: in.Device, Network: in.Network})
		if _, err := p.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScore is Score alone.
func BenchmarkScore(b *testing.B) {
	e := engine(b, nil)
	in := Input{At: t0, Device: "laptop", Network: with(sydney, ListDatacenter), Profile: habitual()}
	b.ReportAllocs()
	for b.Loop() {
		e.Score(in)
	}
}

// BenchmarkScoreRefresh is the cost a refresh adds to the rotation.
func BenchmarkScoreRefresh(b *testing.B) {
	e := engine(b, nil)
	in := refreshFrom(with(sydney, ListDatacenter), safari)
	b.ReportAllocs()
	for b.Loop() {
		if a := e.ScoreRefresh(in); !a.Anomaly {
			b.Fatal("no anomaly")
		}
	}
}
