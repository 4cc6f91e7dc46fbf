package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/atomicfile"
)

// Outbox is the development Provider: instead of sending, it writes each
// message as a small text file into a directory, typically DATA_DIR/outbox
// (the directory the mail outbox uses; the files end in .sms instead of
// .eml). It is safe for concurrent use.
//
// A file holds
//
//	To: +14155552671
//
//	Your Acme code is 123456
//
// and is named <UTC time>-<random>.sms, which is also the message's
// provider id. It is written under a temporary name starting with "." in
// the same directory, synced, and renamed, so a reader listing *.sms never
// sees a partly written one. Files are 0600 and the directory 0700: the
// messages hold live codes. The log gets the calling code and a masked
// number, never the body.
type Outbox struct {
	dir string
	log *slog.Logger
	// Now names files; NewOutbox sets time.Now.
	Now func() time.Time
}

// OutboxFileTimeFormat is the time prefix of outbox file names, in UTC;
// names sort in the order the messages were written. It is the mail
// outbox's format.
const OutboxFileTimeFormat = "20060102T150405.000000000Z"

// NewOutbox creates dir (0700, and tightens an existing one to 0700) and
// returns an Outbox writing into it. log may be nil.
func NewOutbox(dir string, log *slog.Logger) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("sms: outbox directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sms: outbox: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sms: outbox: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{dir: dir, log: log, Now: time.Now}, nil
}

// Dir returns the directory the Outbox writes into.
func (o *Outbox) Dir() string { return o.dir }

// Send implements Provider: it writes m into the outbox directory and
// returns the file's name.
func (o *Outbox) Send(ctx context.Context, m Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := m.check(); err != nil {
		return "", err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("sms: outbox: %w", err)
	}
	name := o.Now().UTC().Format(OutboxFileTimeFormat) + "-" + hex.EncodeToString(r[:]) + ".sms"
	content := "To: " + m.To + "\n\n" + m.Body
	if !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	if err := o.writeAtomic(name, []byte(content)); err != nil {
		return "", fmt.Errorf("sms: outbox: %w", err)
	}
	o.log.InfoContext(ctx, "sms: message written to outbox",
		slog.Int("country_code", CountryCode(m.To)), slog.String("to", Mask(m.To)), slog.String("file", name))
	return name, nil
}

// writeAtomic writes data as name in the outbox directory; a reader never
// sees a partial file.
func (o *Outbox) writeAtomic(name string, data []byte) error {
	return atomicfile.Write(o.dir, name, data)
}
