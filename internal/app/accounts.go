package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/secret"
)

// newHasher builds the password hasher from the Argon2id settings.
func newHasher(cfg *config.Config) *password.Hasher {
	p := password.DefaultParams
	p.Memory = uint32(cfg.Passwords.Argon2MemoryKiB)
	p.Time = uint32(cfg.Passwords.Argon2Time)
	p.Threads = uint8(cfg.Passwords.Argon2Threads)
	return password.NewHasher(p, cfg.Passwords.HashConcurrency)
}

// newPolicy builds the password policy. The returned close releases the
// breached-password file.
func newPolicy(cfg *config.Config, log *slog.Logger) (password.Policy, func() error, error) {
	pol := password.DefaultPolicy()
	pol.MinLength, pol.MaxLength, pol.MinScore = cfg.Passwords.MinLength, cfg.Passwords.MaxLength, cfg.Passwords.MinScore
	for _, r := range cfg.Passwords.Require {
		switch r {
		case "upper":
			pol.RequireUpper = true
		case "lower":
			pol.RequireLower = true
		case "digit":
			pol.RequireDigit = true
		case "symbol":
			pol.RequireSymbol = true
		}
	}
	closer := func() error { return nil }
	var checkers password.MultiChecker
	if cfg.Passwords.BreachedFile != "" {
		f, err := password.OpenBreachFile(cfg.Passwords.BreachedFile)
		if err != nil {
			return pol, closer, fmt.Errorf("GATEHOUSE_BREACHED_PASSWORDS_FILE: %w", err)
		}
		checkers = append(checkers, f)
		closer = f.Close
	}
	if cfg.Passwords.HIBPEnabled {
		checkers = append(checkers, password.NewHIBPClient(cfg.Passwords.HIBPURL, &http.Client{Timeout: 3 * time.Second}))
	}
	if len(checkers) > 0 {
		pol.Breached = checkers
	}
	if err := pol.Validate(); err != nil {
		return pol, closer, fmt.Errorf("password policy: %w", err)
	}
	if cfg.Passwords.BreachedFile == "" && !cfg.Passwords.HIBPEnabled {
		log.Warn("breached-password screening is off; set GATEHOUSE_BREACHED_PASSWORDS_FILE or GATEHOUSE_HIBP_ENABLED")
	}
	return pol, closer, nil
}

// registerMail adds the email worker: SMTP when configured, else the
// outbox directory inside the data dir.
func registerMail(workers *river.Workers, cfg *config.Config, keys *secret.Keyring, log *slog.Logger) error {
	renderer, err := mail.NewRenderer(cfg.Mail.TemplatesDir, mail.Brand{ProductName: cfg.Mail.ProductName, SupportEmail: cfg.Mail.SupportEmail})
	if err != nil {
		return fmt.Errorf("GATEHOUSE_EMAIL_TEMPLATES_DIR: %w", err)
	}
	sender, err := mail.NewSenderFromURL(cfg.Mail.SMTPURL, outboxDir(cfg), cfg.Mail.From, log, nil)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_SMTP_URL: %w", err)
	}
	if cfg.Mail.SMTPURL == "" {
		log.Info("no SMTP server configured; emails are written to the outbox directory", "dir", outboxDir(cfg))
	}
	w, err := mail.NewWorker(renderer, sender, keys, cfg.Mail.From, log)
	if err != nil {
		return err
	}
	return mail.Register(workers, w)
}

func outboxDir(cfg *config.Config) string { return filepath.Join(cfg.Server.DataDir, "outbox") }
