package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/internal/atomicfile"
)

// Outbox is the development Sender: instead of sending, it writes each
// message as an .eml file (RFC 5322, openable by any mail client) into a
// directory, typically DATA_DIR/outbox. It is safe for concurrent use.
//
// Each file is written under a temporary name starting with "." in the same
// directory, synced, and renamed to
// <UTC time>-<random>.eml, so a reader that lists *.eml files never sees a
// partly written one. Files are 0600 and the directory 0700: the messages
// hold live one-time links.
type Outbox struct {
	dir  string
	from string
	log  *slog.Logger
	// Now dates messages and names files; NewOutbox sets time.Now.
	Now func() time.Time
}

// OutboxFileTimeFormat is the time prefix of outbox file names, in UTC;
// names sort in the order the messages were written.
const OutboxFileTimeFormat = "20060102T150405.000000000Z"

// NewOutbox creates dir (0700, and tightens an existing one to 0700) and
// returns an Outbox writing into it. from is the default From address.
// log may be nil; it receives one record per message with the recipient
// and template name only.
func NewOutbox(dir, from string, log *slog.Logger) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox directory is empty")
	}
	if err := checkFrom(from); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{dir: dir, from: from, log: log, Now: time.Now}, nil
}

// Dir returns the directory the Outbox writes into.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m into the outbox directory, filling its From when empty.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.From == "" {
		m.From = o.from
	}
	now := o.Now()
	raw, err := m.Build(now)
	if err != nil {
		return err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	name := now.UTC().Format(OutboxFileTimeFormat) + "-" + hex.EncodeToString(r[:]) + ".eml"

	if err := o.writeAtomic(name, raw); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	o.log.InfoContext(ctx, "mail: message written to outbox", slog.String("to", m.To), slog.String("template", m.Template))
	return nil
}

// writeAtomic writes data as name in the outbox directory; a reader never
// sees a partial file.
func (o *Outbox) writeAtomic(name string, data []byte) error {
	return atomicfile.Write(o.dir, name, data)
}
