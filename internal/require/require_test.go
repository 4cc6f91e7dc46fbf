package require

import "testing"

func TestDeps(t *testing.T) {
	if err := Deps("svc", map[string]bool{"Store": true, "Log": true}); err != nil {
		t.Errorf("all present: %v", err)
	}
	err := Deps("svc", map[string]bool{"Store": false, "KV": true, "Jobs": false})
	if err == nil || err.Error() != "svc: missing Jobs, Store" {
		t.Errorf("two missing: %v, want \"svc: missing Jobs, Store\"", err)
	}
}
