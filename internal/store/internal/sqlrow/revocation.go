package sqlrow

import (
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// CheckDenial validates a denial before it is stored.
func CheckDenial(d store.Denial) error {
	switch {
	case d.Kind != store.DenySession && d.Kind != store.DenyToken:
		return errors.New("denial kind must be session or token")
	case d.ID == "":
		return errors.New("denial needs an ID")
	case d.Until.IsZero():
		return errors.New("denial needs an end")
	}
	return nil
}

// MergeDenials returns the recorded denials and, for each session revoked
// at revokedAt[id], a session denial until revokedAt+window, with one entry
// per kind and ID (the later end) and none that has ended at now.
func MergeDenials(recorded []store.Denial, revokedAt map[string]time.Time, window time.Duration, now time.Time) []store.Denial {
	type key struct{ kind, id string }
	until := make(map[key]time.Time, len(recorded)+len(revokedAt))
	var order []key
	add := func(k key, t time.Time) {
		if !t.After(now) {
			return
		}
		prev, seen := until[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || t.After(prev) {
			until[k] = t
		}
	}
	for _, d := range recorded {
		add(key{d.Kind, d.ID}, d.Until)
	}
	for id, at := range revokedAt {
		add(key{store.DenySession, id}, at.Add(window))
	}
	out := make([]store.Denial, 0, len(order))
	for _, k := range order {
		out = append(out, store.Denial{Kind: k.kind, ID: k.id, Until: Micro(until[k])})
	}
	return out
}
