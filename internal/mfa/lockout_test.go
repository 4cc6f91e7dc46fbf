package mfa

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

func TestLockedProblem(t *testing.T) {
	var p *httpapi.Problem
	if !errors.As(lockedProblem(1500*time.Millisecond), &p) || p.Status != 429 || p.Code != "mfa_locked" || p.RetryAfter != 2 {
		t.Errorf("lockedProblem = %+v, want 429 mfa_locked with Retry-After 2 (rounded up)", p)
	}
}
