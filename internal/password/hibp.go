package password

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultHIBPBaseURL is the Pwned Passwords range API.
const DefaultHIBPBaseURL = "https://api.pwnedpasswords.com"

// DefaultHIBPTimeout bounds one range request.
const DefaultHIBPTimeout = 5 * time.Second

// maxHIBPResponse bounds a range response; real ones, padded, are about
// 40 KB.
const maxHIBPResponse = 2 << 20

// HIBPClient is a BreachChecker using the Have I Been Pwned Pwned Passwords
// range API with k-anonymity: it sends only the first 5 hex digits of the
// password's SHA-1 and compares the returned suffixes locally. Requests ask
// for padding, so the response size does not reveal the prefix either.
type HIBPClient struct {
	baseURL string
	client  *http.Client
	// Timeout bounds each request (default DefaultHIBPTimeout), on top
	// of any timeout the http.Client has.
	Timeout time.Duration
	// UserAgent is sent with each request; the API asks for one.
	UserAgent string
}

// NewHIBPClient returns a client of the range API at baseURL (empty:
// DefaultHIBPBaseURL) using httpClient (nil: a client with
// DefaultHIBPTimeout).
func NewHIBPClient(baseURL string, httpClient *http.Client) *HIBPClient {
	if baseURL == "" {
		baseURL = DefaultHIBPBaseURL
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultHIBPTimeout}
	}
	return &HIBPClient{
		baseURL:   strings.TrimRight(baseURL, "/"),
		client:    httpClient,
		Timeout:   DefaultHIBPTimeout,
		UserAgent: "gatehouse",
	}
}

// Breached implements BreachChecker.
func (c *HIBPClient) Breached(ctx context.Context, password string) (bool, error) {
	sum := sha1.Sum([]byte(password))
	digest := strings.ToUpper(hex.EncodeToString(sum[:]))
	prefix, suffix := digest[:5], digest[5:]

	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/range/"+prefix, nil)
	if err != nil {
		return false, fmt.Errorf("password: pwned passwords: %w", err)
	}
	req.Header.Set("Add-Padding", "true")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("password: pwned passwords: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return false, fmt.Errorf("password: pwned passwords: status %d", resp.StatusCode)
	}
	found, err := scanHIBPRange(io.LimitReader(resp.Body, maxHIBPResponse+1), suffix)
	if err != nil {
		return false, fmt.Errorf("password: pwned passwords: %w", err)
	}
	return found, nil
}

// scanHIBPRange reads SUFFIX:COUNT lines and reports whether suffix is
// among them with a count above zero (padding entries have count 0). The
// whole response is read and checked, so a truncated or garbled one is an
// error rather than a "not breached".
func scanHIBPRange(r io.Reader, suffix string) (bool, error) {
	var (
		found bool
		read  int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		read += len(line) + 1
		if read > maxHIBPResponse {
			return false, errors.New("response too large")
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, count, ok := strings.Cut(line, ":")
		if !ok || len(s) != 2*sha1.Size-5 || !isHex(s) {
			return false, errors.New("malformed response line")
		}
		n, ok := parseDecimal(count, 1<<62)
		if !ok {
			return false, errors.New("malformed response count")
		}
		if n > 0 && strings.EqualFold(s, suffix) {
			found = true
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return found, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
