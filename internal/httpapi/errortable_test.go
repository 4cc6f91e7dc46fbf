package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/store"
)

func TestErrorTableAnswersItsRows(t *testing.T) {
	general := errors.New("general")
	specific := fmt.Errorf("specific: %w", general)
	other := errors.New("other")
	list := []ErrorMapping{
		MapError(specific, http.StatusForbidden, "general", "The specific detail."),
		MapError(general, http.StatusForbidden, "general", "The general detail."),
	}
	tbl, err := NewErrorTable(list, []ErrorMapping{MapUnavailable(other, "Other is down.")})
	if err != nil {
		t.Fatal(err)
	}
	// The table keeps no reference to the lists it was built from.
	list[0] = MapError(specific, http.StatusTeapot, "changed", "")
	for _, c := range []struct {
		err        error
		status     int
		code       string
		detail     string
		retryAfter int
	}{
		{fmt.Errorf("x: %w", specific), 403, "general", "The specific detail.", 0},
		{fmt.Errorf("x: %w", general), 403, "general", "The general detail.", 0},
		{other, 503, CodeServiceUnavailable, "Other is down.", RetryAfterUnavailable},
		// The base rows come first: an outage beats any domain row.
		{fmt.Errorf("%w: %w", general, kv.ErrUnavailable), 503, CodeServiceUnavailable, unavailableDetail, RetryAfterUnavailable},
		{store.ErrNotFound, 404, "not_found", "The resource was not found.", 0},
		{errors.New("unknown"), 500, "internal_error", "An unexpected error occurred. Quote the request ID when reporting it.", 0},
	} {
		p := tbl.Problem(c.err)
		if p.Status != c.status || p.Code != c.code || p.Detail != c.detail || p.RetryAfter != c.retryAfter {
			t.Errorf("Problem(%v) = %d %s %q %d, want %d %s %q %d", c.err, p.Status, p.Code, p.Detail, p.RetryAfter, c.status, c.code, c.detail, c.retryAfter)
		}
		ra, ok := tbl.Unavailable(c.err)
		if ok != (c.code == CodeServiceUnavailable) || ra != c.retryAfter {
			t.Errorf("Unavailable(%v) = %d %v", c.err, ra, ok)
		}
	}
}

func TestErrorTableRefusesRowsItCouldNeverUse(t *testing.T) {
	general := errors.New("general")
	specific := fmt.Errorf("specific: %w", general)
	for name, lists := range map[string][][]ErrorMapping{
		"the same error twice in a list": {{MapError(general, 403, "a", ""), MapError(general, 403, "a", "")}},
		"the same error in two lists":    {{MapError(general, 403, "a", "")}, {MapError(general, 409, "b", "")}},
		"a wrapper after what it wraps":  {{MapError(general, 403, "a", "")}, {MapError(specific, 403, "a", "more")}},
		"a base error again":             {{MapError(store.ErrNotFound, 404, "gone", "")}},
		"an error wrapping a base error": {{MapError(fmt.Errorf("x: %w", store.ErrConflict), 409, "x", "")}},
		"no error":                       {{MapError(nil, 403, "a", "")}},
		"no code":                        {{MapError(general, 403, "", "")}},
		"not an error status":            {{MapError(general, 200, "a", "")}},
	} {
		if tbl, err := NewErrorTable(lists...); err == nil || tbl != nil {
			t.Errorf("%s: NewErrorTable = %v, %v, want an error", name, tbl, err)
		}
	}
	_, err := NewErrorTable([]ErrorMapping{MapError(general, 403, "a", "")}, []ErrorMapping{MapError(specific, 403, "b", "")})
	if err == nil || !strings.Contains(err.Error(), `"specific: general" (b) is already answered by the earlier row "general" (a)`) {
		t.Errorf("error = %v, want it to name both rows", err)
	}
}

// A nil table (a zero ErrorWriter) knows the storage contracts' errors and
// nothing else: no package adds to it behind the wiring's back.
func TestNilErrorTableHoldsTheBaseRowsOnly(t *testing.T) {
	var tbl *ErrorTable
	if p := tbl.Problem(fmt.Errorf("x: %w", store.ErrUnavailable)); p.Status != 503 || p.RetryAfter != RetryAfterUnavailable {
		t.Errorf("store outage = %d %s", p.Status, p.Code)
	}
	if ra, ok := tbl.Unavailable(kv.ErrUnavailable); !ok || ra != RetryAfterUnavailable {
		t.Errorf("Unavailable(kv outage) = %d %v", ra, ok)
	}
	if _, ok := tbl.Unavailable(store.ErrNotFound); ok {
		t.Error("not found is an outage")
	}
}
