package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors returned (possibly wrapped) by Message.Validate and Message.Build.
var (
	// ErrHeader reports a header value with a line break or other control
	// character, or one too long for a header line.
	ErrHeader = errors.New("mail: invalid header value")
	// ErrAddress reports an address net/mail cannot parse.
	ErrAddress = errors.New("mail: invalid address")
)

// Message is one rendered email.
type Message struct {
	From    string // "Name <addr>" or "addr"; filled by the Sender when empty
	To      string // one recipient, "Name <addr>" or "addr"
	Subject string
	Text    string // plain-text body
	HTML    string // HTML body
	// Template is the name of the message the Renderer made this from.
	// It is not sent; Senders may log it.
	Template string
}

// maxSubjectBytes bounds the subject so that its header stays well inside
// the 998-character line limit of RFC 5322 even when encoded.
const maxSubjectBytes = 400

// Validate checks the header values: From and To must each be one address
// net/mail can parse, and no value may contain CR, LF or another control
// character, so nothing can be injected into the header.
func (m Message) Validate() error {
	_, _, err := m.addresses()
	return err
}

func (m Message) addresses() (from, to *mail.Address, err error) {
	if from, err = parseAddress("From", m.From); err != nil {
		return nil, nil, err
	}
	if to, err = parseAddress("To", m.To); err != nil {
		return nil, nil, err
	}
	if strings.ContainsFunc(m.Subject, unicode.IsControl) {
		return nil, nil, fmt.Errorf("%w: subject contains a line break or control character", ErrHeader)
	}
	if len(m.Subject) > maxSubjectBytes {
		return nil, nil, fmt.Errorf("%w: subject longer than %d bytes", ErrHeader, maxSubjectBytes)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, nil, errors.New("mail: message has no body")
	}
	return from, to, nil
}

// Build encodes m as an RFC 5322 message dated date: Date, Message-ID
// (random, at the From address's domain), From, To, Subject (RFC 2047
// encoded when not ASCII), MIME-Version, Auto-Submitted, and a
// multipart/alternative body with a text/plain and a text/html part, both
// UTF-8 and quoted-printable. Every line ends in CRLF and none is longer
// than 78 characters except, at worst, the From and To lines.
func (m Message) Build(date time.Time) ([]byte, error) {
	from, to, err := m.addresses()
	if err != nil {
		return nil, err
	}
	msgID, err := messageID(from.Address)
	if err != nil {
		return nil, err
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ mediaType, content string }{
		{"text/plain", m.Text},
		{"text/html", m.HTML},
	} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", mime.FormatMediaType(part.mediaType, map[string]string{"charset": "utf-8"}))
		// Plain ASCII with short lines goes as 7bit, so links (with their
		// "=" and long tokens) stay intact for any reader, even a grep;
		// anything else is quoted-printable.
		sevenBit := is7bit(part.content)
		if sevenBit {
			h.Set("Content-Transfer-Encoding", "7bit")
		} else {
			h.Set("Content-Transfer-Encoding", "quoted-printable")
		}
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		if sevenBit {
			_, err = io.WriteString(pw, crlf(part.content))
		} else {
			err = writeQuotedPrintable(pw, part.content)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("From", from.String())
	header("To", to.String())
	header("Subject", encodeSubject(m.Subject))
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies
	header("Content-Type", fold(mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}), len("Content-Type: ")))
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

// messageID returns "<random@domain>" for the domain of addr.
func messageID(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return "", fmt.Errorf("%w: from address has no domain", ErrAddress)
	}
	domain := addr[at+1:]
	if strings.ContainsAny(domain, "<>[] \"\\") {
		return "", fmt.Errorf("%w: from address domain cannot be used in a Message-ID", ErrAddress)
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("mail: message id: %w", err)
	}
	return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">", nil
}

// encodeSubject returns the subject as ASCII: printable ASCII as it is,
// anything else (or anything that could be taken for an encoded word) as
// RFC 2047 Q-encoded words, folded at spaces into lines of at most 78
// characters where it can be.
func encodeSubject(s string) string {
	if !isPrintableASCII(s) || strings.Contains(s, "=?") {
		s = strings.Join(qEncodeWords(s), " ")
	}
	return fold(s, len("Subject: "))
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// qEncodeWords encodes s as RFC 2047 "Q" encoded words of UTF-8 of at most
// 66 characters each, never splitting a character between two words
// (RFC 2047 5 and 6.3).
func qEncodeWords(s string) []string {
	const (
		prefix = "=?utf-8?q?"
		suffix = "?="
		// 75 is RFC 2047's limit; 66 keeps the first line, after
		// "Subject: ", within 76 characters too.
		maxWord   = 66
		hexDigits = "0123456789ABCDEF"
	)
	var words []string
	var cur strings.Builder
	var enc []byte
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		enc = enc[:0]
		for _, b := range []byte(s[i : i+size]) {
			switch {
			case b == ' ':
				enc = append(enc, '_')
			case b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
				b == '!' || b == '*' || b == '+' || b == '-' || b == '/':
				enc = append(enc, b)
			default:
				enc = append(enc, '=', hexDigits[b>>4], hexDigits[b&0xf])
			}
		}
		if cur.Len() > 0 && len(prefix)+cur.Len()+len(enc)+len(suffix) > maxWord {
			words = append(words, prefix+cur.String()+suffix)
			cur.Reset()
		}
		cur.Write(enc)
		i += size
	}
	if cur.Len() > 0 {
		words = append(words, prefix+cur.String()+suffix)
	}
	return words
}

// fold breaks a header value at spaces so that no line, including the
// first line's prefix of used characters, exceeds 78 characters where a
// space allows it. Continuation lines start with a space (RFC 5322 2.2.3).
func fold(value string, used int) string {
	const limit = 78
	words := strings.Split(value, " ")
	var b strings.Builder
	lineLen := used
	for i, w := range words {
		if i > 0 {
			if lineLen+1+len(w) > limit {
				b.WriteString("\r\n")
				lineLen = 0
			}
			b.WriteByte(' ')
			lineLen++
		}
		b.WriteString(w)
		lineLen += len(w)
	}
	return b.String()
}

// writeQuotedPrintable writes s with CRLF line endings, quoted-printable.
func writeQuotedPrintable(w interface{ Write([]byte) (int, error) }, s string) error {
	// quotedprintable.Writer turns every "\n" into CRLF in text mode; make
	// sure a CRLF or a lone CR in the input does not become CR CRLF.
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	qw := quotedprintable.NewWriter(w)
	if _, err := qw.Write([]byte(s)); err != nil {
		return err
	}
	return qw.Close()
}

// is7bit reports whether s can travel as 7bit (RFC 5322): ASCII without
// NUL or bare CR, lines of at most 998 bytes.
func is7bit(s string) bool {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if strings.ContainsAny(s, "\r\x00") || !isASCII(s) {
		return false
	}
	for _, line := range strings.Split(s, "\n") {
		if len(line) > 998 {
			return false
		}
	}
	return true
}

// crlf normalises line endings to CRLF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseAddress parses one address such as "a@example.com" or
// "Name <a@example.com>", refusing CR and LF outright, and addresses that
// are not ASCII: those would need SMTPUTF8 (RFC 6531), which this package
// does not negotiate. field names the value in errors.
func parseAddress(field, s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: %s address contains a line break", ErrHeader, field)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w in %s %q: %v", ErrAddress, field, s, err)
	}
	if !isASCII(a.Address) {
		return nil, fmt.Errorf("%w in %s %q: internationalized addresses are not supported", ErrAddress, field, s)
	}
	return a, nil
}

// checkFrom checks a configured From address, including that its domain
// can name Message-IDs.
func checkFrom(from string) error {
	if from == "" {
		return fmt.Errorf("%w: no From address configured", ErrAddress)
	}
	a, err := parseAddress("From", from)
	if err != nil {
		return err
	}
	if _, err := messageID(a.Address); err != nil {
		return err
	}
	return nil
}
