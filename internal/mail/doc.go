// Package mail sends Gatehouse's transactional email: address verification,
// email changes, password resets and security notices.
//
// The pieces, in the order a message passes through them:
//
//   - A Renderer turns a message name (VerifyEmail, PasswordReset, …) and
//     its Data into a Message: a subject, a plain-text body and an HTML
//     body. The templates are embedded (templates/) and each file can be
//     replaced by a file of the same name in an override directory. Every
//     template is parsed and executed once with sample data when the
//     Renderer is made, so a broken override stops start-up instead of
//     failing at send time.
//   - Message.Build encodes a Message as an RFC 5322 message: a
//     multipart/alternative body with quoted-printable text/plain and
//     text/html parts and CRLF line endings. Header values containing CR or
//     LF and addresses net/mail cannot parse are refused, so header
//     injection is not possible.
//   - A Sender delivers it: SMTPSender over SMTP with STARTTLS or implicit
//     TLS, or Outbox, which writes .eml files for development.
//     NewSenderFromURL picks one from configuration.
//   - Sending happens in a River job (kind "mail.send", queue "mail"), never
//     in the HTTP request. Enqueue with NewSendArgs, which seals the
//     message's one-time link with the secret.Keyring so the job row in the
//     database never holds a usable link; Worker opens it just before
//     rendering.
//
// Nothing in this package logs a message's subject, body or link.
package mail
