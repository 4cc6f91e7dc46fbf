package config

import (
	"net/mail"
	"net/url"
	"time"
)

// MailConfig is how emails are sent, what they say and how long their links live.
type MailConfig struct {
	AppURL           string        `env:"APP_URL" doc:"Base URL of the pages links in emails point to (APP_URL/verify-email?token=…, APP_URL/reset-password?token=…, APP_URL/not-me?token=…); https only in production, except localhost. Empty: the issuer."`
	ProductName      string        `env:"PRODUCT_NAME" default:"Gatehouse" doc:"Product name used in emails."`
	SupportEmail     string        `env:"SUPPORT_EMAIL" doc:"Support address offered in emails (optional)."`
	SMTPURL          string        `env:"SMTP_URL" secret:"true" doc:"smtp://user:pass@host:587 (STARTTLS required) or smtps://…:465. Empty: emails are written as .eml files to DATA_DIR/outbox."`
	From             string        `env:"EMAIL_FROM" default:"Gatehouse <no-reply@localhost>" doc:"From address of emails."`
	TemplatesDir     string        `env:"EMAIL_TEMPLATES_DIR" doc:"Directory overriding email templates (same file names as the built-in ones)."`
	VerificationTTL  time.Duration `env:"EMAIL_VERIFICATION_TTL" default:"24h" doc:"Lifetime of email verification links."`
	PasswordResetTTL time.Duration `env:"PASSWORD_RESET_TTL" default:"1h" doc:"Lifetime of password reset links."`
}

func (m MailConfig) validate(env string) []string {
	r := m.deliveryProblems(env)
	if m.ProductName == "" {
		r.bad("PRODUCT_NAME", "must not be empty")
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		r.bad("EMAIL_FROM", "%q is not an email address", m.From)
	}
	if m.SupportEmail != "" {
		if _, err := mail.ParseAddress(m.SupportEmail); err != nil {
			r.bad("SUPPORT_EMAIL", "%q is not an email address", m.SupportEmail)
		}
	}
	if m.VerificationTTL < time.Minute || m.VerificationTTL > 30*24*time.Hour {
		r.bad("EMAIL_VERIFICATION_TTL", "must be between 1m and 720h")
	}
	if m.PasswordResetTTL < time.Minute || m.PasswordResetTTL > 24*time.Hour {
		r.bad("PASSWORD_RESET_TTL", "must be between 1m and 24h")
	}
	return r
}

// deliveryProblems checks where emails go and where their links point.
func (m MailConfig) deliveryProblems(env string) report {
	var r report
	if m.AppURL != "" {
		if err := checkIssuer(m.AppURL); err != nil {
			r.bad("APP_URL", "%v", err)
		}
	}
	if m.SMTPURL != "" {
		u, err := url.Parse(m.SMTPURL)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			r.bad("SMTP_URL", "not an smtp:// or smtps:// URL with a host")
		}
	}
	if env != EnvProduction {
		return r
	}
	// Emailed one-time links start with APP_URL: over http their tokens
	// would travel in the clear.
	if plainHTTP(m.AppURL) {
		r.bad("APP_URL", "must use https:// in production (got %q): emailed one-time links start with it", m.AppURL)
	}
	if m.SMTPURL == "" {
		r.bad("SMTP_URL", "required in production: without it emails (with live one-time links) are written to files in the data dir")
	}
	return r
}
