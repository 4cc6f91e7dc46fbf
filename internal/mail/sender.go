package mail

import (
	"context"
	"crypto/tls"
	"log/slog"
)

// Sender delivers one message. Implementations fill m.From when it is
// empty and must not log a message's subject, body or links.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// NewSenderFromURL returns the Sender configuration asks for: with rawURL
// empty, an Outbox writing into outboxDir (for development; the caller
// should refuse that in production); otherwise an SMTPSender for rawURL
// (see NewSMTPSender). from is the default From address. log may be nil.
func NewSenderFromURL(rawURL, outboxDir, from string, log *slog.Logger, tlsConfig *tls.Config) (Sender, error) {
	if rawURL == "" {
		return NewOutbox(outboxDir, from, log)
	}
	return NewSMTPSender(rawURL, from, tlsConfig)
}
