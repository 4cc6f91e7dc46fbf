package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestFromCallbackError(t *testing.T) {
	for param, want := range map[string]string{
		"access_denied":           CodeAccessDenied,
		"login_required":          CodeAccessDenied,
		"consent_required":        CodeAccessDenied,
		"temporarily_unavailable": CodeProviderUnavailable,
		"server_error":            CodeProviderUnavailable,
		"invalid_scope":           CodeProviderError,
		"redirect_uri_mismatch":   CodeProviderError,
		"<script>":                CodeProviderError,
	} {
		err := FromCallbackError(param, "<b>Injected</b> "+strings.Repeat("x", 500))
		wantCode(t, err, want)
		var pe *Error
		errors.As(err, &pe)
		if strings.Contains(pe.Description, "Injected") {
			t.Errorf("%s: the provider's text reached the description", param)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: error text not shortened (%d bytes)", param, len(err.Error()))
		}
	}
}

func TestClassify(t *testing.T) {
	retrieve := func(status int, code string) error {
		return fmt.Errorf("oauth2: %w", &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code, Body: []byte("secret body")})
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"invalid_grant", retrieve(400, "invalid_grant"), CodeInvalidGrant},
		{"GitHub bad code", retrieve(200, "bad_verification_code"), CodeInvalidGrant},
		{"invalid_client", retrieve(401, "invalid_client"), CodeProviderError},
		{"500 with a code", retrieve(500, "invalid_request"), CodeProviderUnavailable},
		{"502 without a body", retrieve(502, ""), CodeProviderUnavailable},
		{"429", retrieve(429, ""), CodeProviderUnavailable},
		{"temporarily_unavailable", retrieve(400, "temporarily_unavailable"), CodeProviderUnavailable},
		{"access_denied", retrieve(400, "access_denied"), CodeAccessDenied},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), CodeProviderUnavailable},
		{"canceled", &url.Error{Op: "Post", URL: "https://x", Err: context.Canceled}, CodeProviderError},
		{"connection refused", &url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, CodeProviderUnavailable},
		{"DNS", &net.DNSError{Err: "no such host", Name: "x"}, CodeProviderUnavailable},
		{"other", errors.New("oauth2: server response missing access_token"), CodeProviderError},
		{"already classified", errorf(CodeNonceMismatch, "x"), CodeNonceMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err)
			wantCode(t, err, tc.want)
			if strings.Contains(err.Error(), "secret body") {
				t.Errorf("%q carries the response body", err)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

func TestErrorWrapping(t *testing.T) {
	cause := errors.New("cause")
	err := fmt.Errorf("exchange: %w", newError(CodeInvalidGrant, cause))
	if !errors.Is(err, cause) || IsUnavailable(err) || !strings.Contains(err.Error(), "provider: invalid_grant: cause") {
		t.Errorf("err %v", err)
	}
	if IsUnavailable(errors.New("plain")) || IsUnavailable(nil) {
		t.Error("IsUnavailable of a non-provider error")
	}
	for code := range descriptions {
		if newError(code, nil).Description == "" || strings.Contains(newError(code, nil).Error(), "<nil>") {
			t.Errorf("%s: bad description or text", code)
		}
	}
	if newError("made_up", nil).Description != descriptions[CodeProviderError] {
		t.Error("unknown code has no fallback description")
	}
}
