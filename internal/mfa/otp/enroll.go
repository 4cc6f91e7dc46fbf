package otp

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// QRSize is the width and height of the QR code image, in pixels.
const QRSize = 256

// GenerateSecret returns a new random TOTP secret of SecretSize bytes (160
// bits), base32-encoded in upper case without padding (32 characters), the
// form authenticator apps expect. Store it sealed with the keyring.
func GenerateSecret() (string, error) {
	key, err := secret.RandomBytes(SecretSize)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return secretEncoding.EncodeToString(key), nil
}

// URI returns the otpauth URI that enrols the base32 secret in an
// authenticator app (the "Key URI Format" of Google Authenticator):
//
//	otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
//
// issuer and account are percent-encoded (RFC 3986), spaces as %20 rather
// than "+", which some apps show literally. A colon inside either is
// encoded too, so that the label's separator stays unambiguous; "@" is left
// as is, being valid in a URI path and in a query. With an empty issuer the
// label is the account alone and the issuer parameter is left out.
func URI(issuer, account, secret string) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if issuer != "" {
		b.WriteString(escape(issuer))
		b.WriteByte(':')
	}
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(escape(secret))
	if issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escape(issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(SHA1.String())
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(Digits))
	b.WriteString("&period=")
	b.WriteString(strconv.Itoa(Period))
	return b.String()
}

// escape percent-encodes every byte of s except RFC 3986 unreserved
// characters and "@".
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := range len(s) {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '@':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
	return b.String()
}

// QRCodePNGDataURI returns uri as a QR code in a "data:image/png;base64,…"
// URI, QRSize pixels square with medium (15%) error recovery, for an <img>
// element or a JSON response. The image contains the secret: serve it only
// to the user enrolling, with Cache-Control: no-store.
func QRCodePNGDataURI(uri string) (string, error) {
	png, err := qrcode.Encode(uri, qrcode.Medium, QRSize)
	if err != nil {
		return "", fmt.Errorf("otp: encode QR code: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png), nil
}
