package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// StatusPath is where Twilio posts delivery statuses. The StatusCallback
// of Config is the issuer followed by it.
const StatusPath = "/v1/webhooks/twilio/status"

// Twilio's message statuses, as status callbacks report them. A message
// normally goes queued (or accepted, through a messaging service), sending,
// sent, then delivered or undelivered; failed means Twilio could not send
// it at all.
const (
	StatusAccepted    = "accepted"
	StatusScheduled   = "scheduled"
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
	StatusCanceled    = "canceled"
)

// Status is one delivery status callback.
type Status struct {
	// MessageSID is Twilio's id of the message, as Provider.Send returned
	// it (see Worker.OnSent).
	MessageSID string
	// Status is Twilio's message status (StatusDelivered, …). Other values
	// Twilio may add are passed on unchanged.
	Status string
	// ErrorCode is Twilio's error code for undelivered and failed messages
	// (30003 unreachable handset, 30005 unknown number, 30007 carrier
	// filtering, …), 0 when none was given.
	ErrorCode int
	// To is the recipient in E.164 form, or "" if Twilio did not send one.
	To string
}

// Failed reports whether the message will not reach the user: the moment
// to offer the email code instead.
func (s Status) Failed() bool {
	return s.Status == StatusUndelivered || s.Status == StatusFailed || s.Status == StatusCanceled
}

// maxStatusBody bounds a status callback's body; Twilio's are well under
// 2 KiB.
const maxStatusBody = 64 << 10

// StatusHandler serves POST /v1/webhooks/twilio/status (StatusPath):
// Twilio's delivery status callbacks. It accepts a request only when its
// X-Twilio-Signature header is Twilio's signature over PublicURL and the
// POST parameters (see TwilioSignature); anything else gets 403 with the
// problem code invalid_signature. A valid callback is passed to Record and
// answered 200.
//
// Twilio's signatures carry no timestamp, so a captured callback can be
// replayed; Record must be idempotent (recording the same status twice
// changes nothing), which a status update by message SID is.
type StatusHandler struct {
	// AuthToken is the Twilio auth token that signs the callbacks.
	AuthToken string
	// PublicURL is the exact URL Twilio calls: the StatusCallback sent
	// with each message, e.g. the issuer + StatusPath. The address the
	// request arrived at (behind a proxy, an internal one) is not used.
	PublicURL string
	// Record stores a status. An error answers 500 (and is logged).
	Record func(ctx context.Context, s Status) error
	// Log receives refused and failed callbacks; nil discards.
	Log *slog.Logger
}

// Routes mounts the handler on POST StatusPath.
func (h *StatusHandler) Routes(rt *httpapi.Router) {
	rt.HandleHTTP("POST "+StatusPath, h)
}

func (h *StatusHandler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// ServeHTTP implements http.Handler.
func (h *StatusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		p := httpapi.NewProblem(http.StatusMethodNotAllowed, "method_not_allowed", "The route does not accept "+r.Method+".")
		p.Header = http.Header{"Allow": {http.MethodPost}}
		httpapi.WriteProblem(w, r, p)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxStatusBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusRequestEntityTooLarge, "request_too_large", "The request body is too large."))
			return
		}
		httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusBadRequest, "invalid_request", "The request body is not a valid form."))
		return
	}
	if h.AuthToken == "" || h.PublicURL == "" {
		h.log().ErrorContext(ctx, "sms: Twilio status callback refused: StatusHandler has no auth token or public URL")
		writeBadSignature(w, r)
		return
	}
	signedURL := h.PublicURL
	if r.URL.RawQuery != "" && !strings.Contains(signedURL, "?") {
		signedURL += "?" + r.URL.RawQuery
	}
	if !validTwilioSignature(h.AuthToken, r.Header.Get("X-Twilio-Signature"), signedURL, r.PostForm) {
		h.log().WarnContext(ctx, "sms: Twilio status callback with a missing or wrong signature",
			slog.Bool("signature_present", r.Header.Get("X-Twilio-Signature") != ""))
		writeBadSignature(w, r)
		return
	}

	st, ok := parseStatus(r.PostForm)
	if !ok {
		httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusBadRequest, "invalid_request",
			"The callback lacks a valid MessageSid or MessageStatus."))
		return
	}
	if h.Record != nil {
		if err := h.Record(ctx, st); err != nil {
			h.log().ErrorContext(ctx, "sms: recording a delivery status failed",
				slog.String("message_sid", st.MessageSID), slog.String("status", st.Status), slog.String("error", err.Error()))
			httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusInternalServerError, "internal_error",
				"An unexpected error occurred. Quote the request ID when reporting it."))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func writeBadSignature(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusForbidden, "invalid_signature",
		"The X-Twilio-Signature header is missing or does not match the request."))
}

// parseStatus reads a status callback's parameters.
func parseStatus(form url.Values) (Status, bool) {
	st := Status{MessageSID: form.Get("MessageSid"), Status: form.Get("MessageStatus")}
	if st.Status == "" {
		st.Status = form.Get("SmsStatus") // the older name, still sent
	}
	if !isProviderID(st.MessageSID) || !isStatusWord(st.Status) {
		return Status{}, false
	}
	if c := form.Get("ErrorCode"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return Status{}, false
		}
		st.ErrorCode = n
	}
	if to := form.Get("To"); isE164Syntax(to) {
		st.To = to
	}
	return st, true
}

// isStatusWord reports whether s is 1 to 32 of a-z and '_'.
func isStatusWord(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// TwilioSignature computes Twilio's request signature, the value of the
// X-Twilio-Signature header: the base64 HMAC-SHA1, keyed with the auth
// token, of the full URL Twilio requested followed by every POST parameter
// name and value, sorted by name. A repeated name is signed once for each
// of its distinct values, in sorted order, as Twilio's helper libraries
// do.
func TwilioSignature(authToken, fullURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		values := slices.Clone(params[name])
		slices.Sort(values)
		values = slices.Compact(values)
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// validTwilioSignature reports whether sig is Twilio's signature over
// fullURL and params. Like Twilio's own helper libraries it also accepts a
// signature over the URL with the port removed or, when it has none, with
// the scheme's default port added, as Twilio may sign either. Comparisons
// take constant time.
func validTwilioSignature(authToken, sig, fullURL string, params url.Values) bool {
	if sig == "" {
		return false
	}
	ok := false
	for _, u := range urlPortVariants(fullURL) {
		// No early exit: the work done does not depend on which matched.
		if hmac.Equal([]byte(TwilioSignature(authToken, u, params)), []byte(sig)) {
			ok = true
		}
	}
	return ok
}

// urlPortVariants returns raw and raw with its port toggled: removed when
// it has one, the scheme's default (443, 80) added when it has none. The
// rest of the URL is kept byte for byte.
func urlPortVariants(raw string) []string {
	schemeEnd := strings.Index(raw, "://")
	if schemeEnd < 0 {
		return []string{raw}
	}
	scheme := strings.ToLower(raw[:schemeEnd])
	start := schemeEnd + 3
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	authority := raw[start:end]
	userinfo := ""
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	var toggled string
	if host, _, err := net.SplitHostPort(authority); err == nil {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		toggled = host
	} else {
		var port string
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return []string{raw}
		}
		toggled = authority + ":" + port
	}
	return []string{raw, raw[:start] + userinfo + toggled + raw[end:]}
}
