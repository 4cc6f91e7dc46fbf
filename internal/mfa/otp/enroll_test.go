package otp

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"net/url"
	"strings"
	"testing"

	potp "github.com/pquerna/otp"
)

const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

func TestURI(t *testing.T) {
	tests := []struct {
		issuer, account string
		want            string
	}{
		{
			"Gatehouse", "alice@example.com",
			"otpauth://totp/Gatehouse:alice@example.com?secret=" + testSecret +
				"&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30",
		},
		{
			"ACME Co", "John Doe",
			"otpauth://totp/ACME%20Co:John%20Doe?secret=" + testSecret +
				"&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
		},
		{
			"a:b", "c:d@e",
			"otpauth://totp/a%3Ab:c%3Ad@e?secret=" + testSecret +
				"&issuer=a%3Ab&algorithm=SHA1&digits=6&period=30",
		},
		{
			"Ünï & Co/?#+%", "x=y&z",
			"otpauth://totp/%C3%9Cn%C3%AF%20%26%20Co%2F%3F%23%2B%25:x%3Dy%26z?secret=" + testSecret +
				"&issuer=%C3%9Cn%C3%AF%20%26%20Co%2F%3F%23%2B%25&algorithm=SHA1&digits=6&period=30",
		},
		{
			"", "bob",
			"otpauth://totp/bob?secret=" + testSecret + "&algorithm=SHA1&digits=6&period=30",
		},
	}
	for _, tt := range tests {
		t.Run(tt.issuer+"|"+tt.account, func(t *testing.T) {
			got := URI(tt.issuer, tt.account, testSecret)
			if got != tt.want {
				t.Errorf("URI =\n%s\nwant\n%s", got, tt.want)
			}
			issuer, account, q := parseOTPAuth(t, got)
			if issuer != tt.issuer || account != tt.account {
				t.Errorf("label parses as issuer %q account %q", issuer, account)
			}
			wantQ := url.Values{"secret": {testSecret}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
			if tt.issuer != "" {
				wantQ.Set("issuer", tt.issuer)
			}
			if q.Encode() != wantQ.Encode() {
				t.Errorf("query = %v, want %v", q, wantQ)
			}
			if strings.Contains(got, "+") {
				t.Error("URI encodes a space as '+'")
			}
		})
	}
}

// parseOTPAuth splits an otpauth URI the way an authenticator app does: the
// label at its literal colon, then each part percent-decoded.
func parseOTPAuth(t *testing.T, uri string) (issuer, account string, q url.Values) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("scheme %q host %q", u.Scheme, u.Host)
	}
	label := strings.TrimPrefix(u.EscapedPath(), "/")
	if i := strings.IndexByte(label, ':'); i >= 0 {
		if issuer, err = url.PathUnescape(label[:i]); err != nil {
			t.Fatal(err)
		}
		label = label[i+1:]
	}
	if account, err = url.PathUnescape(label); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(label, ":") {
		t.Errorf("label has more than one literal colon: %q", u.EscapedPath())
	}
	q, err = url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	return issuer, account, q
}

// pquerna/otp's own parser reads the parameters back.
func TestURIParsesWithPquerna(t *testing.T) {
	key, err := potp.NewKeyFromURL(URI("ACME Co", "alice@example.com", testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if key.Type() != "totp" || key.Issuer() != "ACME Co" || key.AccountName() != "alice@example.com" ||
		key.Secret() != testSecret || key.Period() != 30 || key.Digits() != potp.DigitsSix ||
		key.Algorithm() != potp.AlgorithmSHA1 {
		t.Errorf("parsed key: type %s issuer %q account %q secret %s period %d digits %v algorithm %v",
			key.Type(), key.Issuer(), key.AccountName(), key.Secret(), key.Period(), key.Digits(), key.Algorithm())
	}
}

func TestQRCodePNGDataURI(t *testing.T) {
	const prefix = "data:image/png;base64,"
	got, err := QRCodePNGDataURI(URI("Gatehouse", "alice@example.com", testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("data URI starts %.30q", got)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got, prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if cfg.Width != QRSize || cfg.Height != QRSize {
		t.Errorf("image is %dx%d, want %dx%d", cfg.Width, cfg.Height, QRSize, QRSize)
	}

	if _, err := QRCodePNGDataURI(strings.Repeat("x", 5000)); err == nil {
		t.Error("content too long for a QR code was accepted")
	}
}
